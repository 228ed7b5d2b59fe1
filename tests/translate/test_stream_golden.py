"""Stream goldens and real Bedrock captures through botocore's parser and our translator.

See tests/golden/stream/README.md for the file formats.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from aiobotocore.eventstream import AioEventStream
from aiobotocore.parsers import AioEventStreamJSONParser
from botocore.eventstream import EventStreamBuffer
from botocore.parsers import EventStreamJSONParser
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from gateway.server.sse import DONE, encode_chunk
from gateway.surfaces.openai_chat import ChatStreamEncoder
from gateway.translate.openai_chat.stream import StreamTranslator

GOLDEN = Path(__file__).parent.parent / "golden" / "stream"
RECORDED = sorted(path.stem for path in GOLDEN.glob("*.eventstream"))
CASES = sorted(
    {path.name.removesuffix(".events.jsonl") for path in GOLDEN.glob("*.events.jsonl")}
    | set(RECORDED)
)
TEXT_THEN_TOOL = GOLDEN / "recorded-claude-text-then-tool.eventstream"

GOLDEN_ID = "chatcmpl-golden"
GOLDEN_CREATED = 1_700_000_000
GOLDEN_MODEL = "golden-model"

# include_usage is on except for these, so that both stream shapes are pinned.
WITHOUT_USAGE = {"text-only", "max-tokens", "tool-call-then-text", "recorded-nova-micro-text"}
# Names the request translator would have renamed for Bedrock -> the client's own names.
TOOL_NAMES = {"parallel-tool-calls": {"lookup_order": "orders.lookup"}}
# The `structured-output*` cases answer a request whose response_format became this tool.
STRUCTURED_OUTPUT_TOOL = "CityLocation"

_STREAM_SHAPE = (
    botocore.session.get_session()
    .get_service_model("bedrock-runtime")
    .operation_model("ConverseStream")
    .output_shape.members["stream"]
)


def hydrate(line: dict[str, Any]) -> dict[str, Any]:
    """One events.jsonl line as aiobotocore would yield it (see the README)."""
    ((event_type, payload),) = line.items()
    if event_type not in _STREAM_SHAPE.members:
        return line
    response = {
        "status_code": 200,
        "headers": {":message-type": "event", ":event-type": event_type},
        "body": json.dumps(payload).encode(),
    }
    parsed: dict[str, Any] = EventStreamJSONParser().parse(response, _STREAM_SHAPE)
    return parsed


class _Body:
    """The slice of an aiohttp response that `AioEventStream` reads."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self.content = self
        self._pieces = list(pieces)

    async def iter_chunks(self) -> AsyncIterator[tuple[bytes, bool]]:
        for piece in self._pieces:
            yield piece, True


async def aiobotocore_events(pieces: Iterable[bytes]) -> list[dict[str, Any]]:
    """What aiobotocore's `converse_stream()["stream"]` yields for a body read in `pieces`."""
    stream = AioEventStream(_Body(pieces), _STREAM_SHAPE, AioEventStreamJSONParser(), "x")
    return [event async for event in stream]


def translate(
    events: Iterable[dict[str, Any]],
    *,
    include_usage: bool = True,
    tool_names: dict[str, str] | None = None,
    structured_output_tool: str | None = None,
) -> list[dict[str, Any]]:
    translator = StreamTranslator(
        completion_id=GOLDEN_ID,
        model=GOLDEN_MODEL,
        created=GOLDEN_CREATED,
        include_usage=include_usage,
        tool_names=tool_names,
        structured_output_tool=structured_output_tool,
    )
    chunks = [chunk for event in events for chunk in translator.feed(event)]
    return chunks + translator.flush()


def read_jsonl(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_jsonl(path: Path, items: Iterable[Any]) -> None:
    lines = (json.dumps(item, ensure_ascii=False) + "\n" for item in items)
    path.write_text("".join(lines), encoding="utf-8")


def _as_wire(value: Any) -> Any:
    # botocore's bytes back to the base64 text they were on the wire.
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {key: _as_wire(item) for key, item in value.items()}
    return value


def check_stream_properties(chunks: list[dict[str, Any]], *, include_usage: bool) -> None:
    """What every OpenAI stream consumer relies on, whatever the content."""
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    assert {(c["id"], c["object"], c["created"], c["model"]) for c in chunks} == {
        (GOLDEN_ID, "chat.completion.chunk", GOLDEN_CREATED, GOLDEN_MODEL)
    }
    choices = [choice for chunk in chunks for choice in chunk["choices"]]
    assert choices[0]["delta"]["role"] == "assistant"
    assert [c["finish_reason"] for c in choices if c["finish_reason"] is not None] != []
    assert sum(c["finish_reason"] is not None for c in choices) == 1
    # Only the first delta may carry empty content.
    assert all(c["delta"].get("content") != "" for c in choices[1:])

    arguments: dict[int, str] = {}
    for choice in choices:
        for call in choice["delta"].get("tool_calls", []):
            index = call["index"]
            if index not in arguments:
                assert index == len(arguments), "tool indexes are 0..n-1 in order of appearance"
                assert call["id"] and call["type"] == "function" and call["function"]["name"]
                arguments[index] = ""
            else:
                assert "id" not in call and "name" not in call["function"]
            arguments[index] += call["function"]["arguments"]
    for joined in arguments.values():
        json.loads(joined)

    usage_chunks = [i for i, chunk in enumerate(chunks) if chunk.get("usage") is not None]
    if include_usage:
        assert all("usage" in chunk for chunk in chunks)
    else:
        assert all("usage" not in chunk for chunk in chunks)
    assert usage_chunks in ([], [len(chunks) - 1])
    if usage_chunks:
        assert chunks[-1]["choices"] == []


def check_structured_output(chunks: list[dict[str, Any]]) -> None:
    """The joined content is one JSON object and the answer tool never shows as a call."""
    choices = [choice for chunk in chunks for choice in chunk["choices"]]
    content = "".join(choice["delta"].get("content") or "" for choice in choices)
    assert isinstance(json.loads(content), dict)
    names = [
        call["function"].get("name")
        for choice in choices
        for call in choice["delta"].get("tool_calls", [])
    ]
    assert STRUCTURED_OUTPUT_TOOL not in names
    [finish] = [c["finish_reason"] for c in choices if c["finish_reason"] is not None]
    assert finish == ("tool_calls" if any(names) else "stop")


@pytest.mark.parametrize("case", RECORDED)
async def test_recorded_events_are_what_aiobotocore_yields(case: str, update_golden: bool) -> None:
    events = await aiobotocore_events([(GOLDEN / f"{case}.eventstream").read_bytes()])
    path = GOLDEN / f"{case}.events.jsonl"
    if update_golden:
        write_jsonl(path, (_as_wire(event) for event in events))
    assert [hydrate(line) for line in read_jsonl(path)] == events


async def test_botocore_drops_the_padding_field() -> None:
    """Bedrock pads every event with a random `p`; botocore's parser must not pass it on."""
    raw = TEXT_THEN_TOOL.read_bytes()
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    payloads = [json.loads(message.payload) for message in buffer]
    assert all("p" in payload for payload in payloads)

    events = await aiobotocore_events([raw])
    assert len(events) == len(payloads)
    assert all("p" not in body for event in events for body in event.values())


@pytest.mark.parametrize("case", CASES)
def test_stream_golden(case: str, update_golden: bool) -> None:
    include_usage = case not in WITHOUT_USAGE
    events = [hydrate(line) for line in read_jsonl(GOLDEN / f"{case}.events.jsonl")]
    structured = STRUCTURED_OUTPUT_TOOL if case.startswith("structured-output") else None
    chunks = translate(
        events,
        include_usage=include_usage,
        tool_names=TOOL_NAMES.get(case),
        structured_output_tool=structured,
    )
    check_stream_properties(chunks, include_usage=include_usage)
    if structured is not None:
        check_structured_output(chunks)

    path = GOLDEN / f"{case}.chunks.jsonl"
    if update_golden:
        write_jsonl(path, chunks)
    assert path.exists(), f"no {path.name}: run pytest --update-golden and review it"
    assert read_jsonl(path) == chunks


@pytest.mark.parametrize("case", CASES)
def test_the_chat_encoder_writes_the_golden_chunks(case: str) -> None:
    """The bytes a client gets: the encoder writes most text deltas from a template, not
    from the translator's chunks, and must still write exactly those chunks."""
    include_usage = case not in WITHOUT_USAGE
    events = [hydrate(line) for line in read_jsonl(GOLDEN / f"{case}.events.jsonl")]
    encoder = ChatStreamEncoder(
        StreamTranslator(
            completion_id=GOLDEN_ID,
            model=GOLDEN_MODEL,
            created=GOLDEN_CREATED,
            include_usage=include_usage,
            tool_names=TOOL_NAMES.get(case),
            structured_output_tool=(
                STRUCTURED_OUTPUT_TOOL if case.startswith("structured-output") else None
            ),
        ),
        collect=True,
    )
    written = b"".join([encoder.feed(event) for event in events]) + encoder.close()

    chunks = read_jsonl(GOLDEN / f"{case}.chunks.jsonl")
    ended_in_error = "error" in chunks[-1]
    assert written == b"".join(encode_chunk(c) for c in chunks) + (b"" if ended_in_error else DONE)
    assert encoder.completion() == "".join(
        choice["delta"].get("content") or "" for c in chunks for choice in c.get("choices", ())
    )


async def test_text_then_tool_capture_split_at_every_byte_boundary() -> None:
    raw = TEXT_THEN_TOOL.read_bytes()
    expected = translate(await aiobotocore_events([raw]))
    for split in range(1, len(raw)):
        pieces = [raw[:split], raw[split:]]
        assert translate(await aiobotocore_events(pieces)) == expected, split


@pytest.mark.parametrize("case", RECORDED)
async def test_capture_fed_one_byte_at_a_time(case: str) -> None:
    raw = (GOLDEN / f"{case}.eventstream").read_bytes()
    expected = translate(await aiobotocore_events([raw]))
    one_by_one = [raw[i : i + 1] for i in range(len(raw))]
    assert translate(await aiobotocore_events(one_by_one)) == expected


async def test_openai_sdk_accumulates_the_text_then_tool_capture() -> None:
    """What a client using the official SDK ends up with (tests/golden/stream/README.md)."""
    chunks = translate(await aiobotocore_events([TEXT_THEN_TOOL.read_bytes()]))
    state: ChatCompletionStreamState[None] = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    completion = state.get_final_completion()

    choice = completion.choices[0]
    assert choice.message.content == (
        'To calculate the cosine of 7, we can use the "cosine" function that is available'
        " to us. Let's use this function to get the result."
    )
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.id == "tooluse_QklrEHKjRu6Oc4BQUfy7ZQ"
    assert call.type == "function"
    assert call.function.name == "cosine"
    assert json.loads(call.function.arguments) == {"x": 7}
    assert completion.usage is not None
    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (386, 75, 461)
