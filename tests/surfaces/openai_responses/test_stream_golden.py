"""Responses stream goldens: the chat pair's ConverseStream cases -> Responses SSE events.

Inputs are `tests/golden/stream/<case>.events.jsonl` (shared with the chat goldens, see
that folder's README: each line goes through botocore's parser first); expectations are
`tests/golden/responses/stream/<case>.events.jsonl`, the decoded events, compared whole.
`pytest --update-golden` rewrites them. On every case the test also checks what Responses
clients rely on: the SDK's event types validate, `sequence_number` counts 0, 1, ..., every
added item is done once, the final response equals the non-streamed translation of the
same answer, and the SSE bytes decode to the same events however they are split.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.schemas.openai_responses import ResponsesRequest
from gateway.translate.openai_responses.reasoning_codec import decode_reasoning
from gateway.translate.openai_responses.response import converse_to_response, request_echo
from gateway.translate.openai_responses.stream import ResponsesStream
from tests.translate.test_stream_golden import aiobotocore_events, hydrate, read_jsonl, write_jsonl

INPUTS = Path(__file__).parents[2] / "golden" / "stream"
GOLDEN = Path(__file__).parents[2] / "golden" / "responses" / "stream"
CASES = sorted(path.name.removesuffix(".events.jsonl") for path in INPUTS.glob("*.events.jsonl"))
KEY = b"golden-key-golden-key-golden-key"
RESPONSE_ID = "resp_golden"
CREATED = 1_700_000_000
MODEL = "golden-model"
STRUCTURED = "CityLocation"
TOOL_NAMES = {"parallel-tool-calls": {"lookup_order": "orders.lookup"}}
EVENTS = TypeAdapter(ResponseStreamEvent)


def _request(case: str) -> ResponsesRequest:
    body: dict[str, Any] = {"model": MODEL, "input": "hi"}
    if "reasoning" in case:
        body["reasoning"] = {"effort": "medium", "summary": "auto"}
        body["include"] = ["reasoning.encrypted_content"]
    return ResponsesRequest.model_validate(body)


def _translator(case: str) -> ResponsesStream:
    return ResponsesStream(
        request_echo(_request(case), store=False),
        response_id=RESPONSE_ID,
        model=MODEL,
        created_at=CREATED,
        tool_names=TOOL_NAMES.get(case),
        structured_output_tool=STRUCTURED if case.startswith("structured-output") else None,
        reasoning_key=KEY if "reasoning" in case else None,
    )


def decode_sse(data: bytes) -> list[dict[str, Any]]:
    """The events of an SSE body, checking that each `event:` line names its data's type."""
    events = []
    for frame in data.decode("utf-8").split("\n\n"):
        if not frame:
            continue
        event_line, data_line = frame.split("\n")
        event = json.loads(data_line.removeprefix("data: "))
        assert event_line == f"event: {event['type']}"
        events.append(event)
    return events


def run(case: str) -> tuple[bytes, ResponsesStream]:
    translator = _translator(case)
    events = [hydrate(line) for line in read_jsonl(INPUTS / f"{case}.events.jsonl")]
    body = translator.start() + b"".join(translator.feed(event) for event in events)
    return body + translator.finish(), translator


def aggregate(case: str) -> dict[str, Any]:
    """The Converse (non-streaming) response that carries the same answer as the stream."""
    blocks: dict[int, dict[str, Any]] = {}
    result: dict[str, Any] = {}
    for event in (hydrate(line) for line in read_jsonl(INPUTS / f"{case}.events.jsonl")):
        match event:
            case {"contentBlockStart": {"contentBlockIndex": i, "start": {"toolUse": tool}}}:
                blocks[i] = {"toolUse": {**tool, "input": ""}}
            case {"contentBlockDelta": {"contentBlockIndex": i, "delta": delta}}:
                block = blocks.setdefault(i, {})
                if "text" in delta:
                    block["text"] = block.get("text", "") + delta["text"]
                elif "toolUse" in delta:
                    block["toolUse"]["input"] += delta["toolUse"]["input"]
                elif "reasoningContent" in delta:
                    rc = delta["reasoningContent"]
                    if "redactedContent" in rc:
                        block["reasoningContent"] = {"redactedContent": rc["redactedContent"]}
                        continue
                    text = block.setdefault("reasoningContent", {}).setdefault("reasoningText", {})
                    if "text" in rc:
                        text["text"] = text.get("text", "") + rc["text"]
                    if "signature" in rc:
                        text["signature"] = rc["signature"]
            case {"messageStop": stop}:
                result["stopReason"] = stop["stopReason"]
            case {"metadata": metadata}:
                result["usage"] = metadata["usage"]
                if "serviceTier" in metadata:  # a whole answer carries it at the top
                    result["serviceTier"] = metadata["serviceTier"]
    for block in blocks.values():
        if "toolUse" in block:
            raw = block["toolUse"]["input"]
            block["toolUse"]["input"] = json.loads(raw) if raw else None
    content = [blocks[i] for i in sorted(blocks)]
    return {"output": {"message": {"role": "assistant", "content": content}}, **result}


@pytest.mark.parametrize("case", CASES)
def test_stream_golden(case: str, update_golden: bool) -> None:
    body, _ = run(case)
    events = decode_sse(body)
    path = GOLDEN / f"{case}.events.jsonl"
    if update_golden:
        write_jsonl(path, events)
    assert events == read_jsonl(path)


@pytest.mark.parametrize("case", CASES)
def test_stream_properties(case: str) -> None:
    body, translator = run(case)
    events = decode_sse(body)
    for event in events:
        EVENTS.validate_python(event)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert [event["type"] for event in events[:2]] == ["response.created", "response.in_progress"]
    assert events[-1]["type"] in ("response.completed", "response.incomplete")
    added = [e["item"]["id"] for e in events if e["type"] == "response.output_item.added"]
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert sorted(added) == sorted(item["id"] for item in done)
    final = events[-1]["response"]
    assert final["output"] == sorted(done, key=lambda item: added.index(item["id"]))
    for item in final["output"]:
        if item["type"] == "function_call":
            json.loads(item["arguments"])
        if item["type"] == "reasoning" and "encrypted_content" in item:
            decode_reasoning(item["encrypted_content"], key=KEY)
    Response.model_validate(final)
    assert translator.final == final


@pytest.mark.parametrize(
    "case", [case for case in CASES if case not in ("no-message-stop", "unknown-event")]
)
def test_stream_ends_where_the_non_streamed_response_does(case: str) -> None:
    """`responses.stream(...).get_final_response()` equals `responses.create(...)`."""
    body, _ = run(case)
    streamed = decode_sse(body)[-1]["response"]
    whole = converse_to_response(
        aggregate(case),
        request_echo(_request(case), store=False),
        response_id=RESPONSE_ID,
        model=MODEL,
        created_at=CREATED,
        tool_names=TOOL_NAMES.get(case),
        structured_output_tool=STRUCTURED if case.startswith("structured-output") else None,
        reasoning_key=KEY if "reasoning" in case else None,
    )
    assert _parsed_json(streamed) == _parsed_json(whole)


def _parsed_json(response: dict[str, Any]) -> dict[str, Any]:
    """`response` with JSON texts parsed: a stream carries the model's own fragments
    (`{"a": 1}`), a whole Converse answer a parsed document we print compactly."""
    output = []
    for item in response["output"]:
        if item["type"] == "function_call":
            item = {**item, "arguments": json.loads(item["arguments"])}
        elif item["type"] == "message":
            text = item["content"][0]["text"]
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = text
            item = {**item, "content": [{**item["content"][0], "text": parsed}]}
        output.append(item)
    return {**response, "output": output}


@pytest.mark.parametrize("case", ["recorded-claude-sonnet4-reasoning", "parallel-tool-calls"])
def test_sse_bytes_decode_the_same_in_any_split(case: str) -> None:
    """A client reading the body byte by byte (or in odd pieces) sees the same events."""
    body, _ = run(case)
    expected = decode_sse(body)
    for size in (1, 7, 64):
        buffer = b""
        events: list[dict[str, Any]] = []
        for start in range(0, len(body), size):
            buffer += body[start : start + size]
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                events.extend(decode_sse(frame + b"\n\n"))
        assert buffer == b"" and events == expected


def test_mid_stream_failure_ends_with_error_then_failed() -> None:
    translator = _translator("text-only")
    translator.start()
    translator.feed({"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "Hel"}}})
    events = decode_sse(translator.fail("ThrottlingException", "slow down"))
    assert [e["type"] for e in events] == ["error", "response.failed"]
    assert events[0]["sequence_number"] + 1 == events[1]["sequence_number"]
    assert events[1]["response"]["status"] == "failed"
    assert events[1]["response"]["error"]["code"] == events[0]["code"]
    for event in events:
        EVENTS.validate_python(event)
    assert translator.finish() == b""


RECORDED = sorted(path.stem for path in INPUTS.glob("*.eventstream"))


@pytest.mark.parametrize("case", RECORDED)
@pytest.mark.parametrize("size", [1, 5, 4096])
async def test_recorded_bytes_in_any_split_give_the_golden(case: str, size: int) -> None:
    """Bedrock's raw body, cut into pieces of `size` bytes, through aiobotocore and us."""
    raw = (INPUTS / f"{case}.eventstream").read_bytes()
    pieces = [raw[i : i + size] for i in range(0, len(raw), size)]
    translator = _translator(case)
    body = translator.start()
    for event in await aiobotocore_events(pieces):
        body += translator.feed(event)
    body += translator.finish()
    assert decode_sse(body) == read_jsonl(GOLDEN / f"{case}.events.jsonl")


def _text_deltas(*texts: str) -> list[dict[str, Any]]:
    return [
        {"messageStart": {"role": "assistant"}},
        *({"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": t}}} for t in texts),
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"messageStop": {"stopReason": "end_turn"}},
        {"metadata": {"usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}}},
    ]


CRAFTED = {
    "texts": _text_deltas("Hello", ", ", "world", "", "!"),
    "unicode": _text_deltas("Zoë ", '✓ "quoted" \\ and\nnewline', "\u2028", "日本"),
    "lone-surrogate": _text_deltas("before ", "bad \ud800 half", " after"),
}


@pytest.mark.parametrize("case", [*CASES, *CRAFTED])
def test_text_deltas_written_from_a_template_are_the_bytes_of_the_general_path(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Most of a stream's events are text deltas inside an open message; those are written
    # from a per-item template. Turned off, every event takes the general path (an event
    # dict, encoded whole): the two must give the same bytes, event for event.
    if case in CRAFTED:
        events: list[dict[str, Any]] = CRAFTED[case]
    else:
        events = [hydrate(line) for line in read_jsonl(INPUTS / f"{case}.events.jsonl")]

    def frames() -> list[bytes]:
        translator = _translator(case)
        out = [translator.start(), *(translator.feed(event) for event in events)]
        return [*out, translator.finish()]

    fast = frames()
    monkeypatch.setattr(ResponsesStream, "_text_delta", lambda self, text: None)
    assert fast == frames()
