"""Answer shapes against real Bedrock recordings: same events, keys and block kinds."""

from __future__ import annotations

import base64
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.emulator.answers import (
    converse_response,
    input_fragments,
    stream_events,
    stream_plan,
    text_pieces,
)
from gateway.emulator.script import parse_script
from tests.emulator.conftest import decode, user

RECORDED = Path("/work/shared/fixtures/recorded")
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDED / f"{name}.json").read_text())
    response: dict[str, Any] = data["response"]
    return response


def script_for(script: dict[str, Any]) -> Any:
    return parse_script({"messages": user("hello", script)})


def shape(event: dict[str, Any]) -> tuple[Any, ...]:
    """Event name, payload keys and the kind of delta/start: not text, ids or lengths."""
    ((name, payload),) = event.items()
    inner = payload.get("delta") or payload.get("start") or {}
    kinds = tuple(
        sorted((k, tuple(sorted(v)) if isinstance(v, dict) else ()) for k, v in inner.items())
    )
    return name, tuple(sorted(payload)), kinds


def runs(events: list[dict[str, Any]]) -> list[Any]:
    return [key for key, _ in itertools.groupby(shape(e) for e in events)]


def ours(script: dict[str, Any]) -> list[dict[str, Any]]:
    return [{name: payload} for name, payload in stream_events(script_for(script))]


def texts(events: list[dict[str, Any]], index: int, kind: str = "text") -> str:
    parts = []
    for event in events:
        delta = event.get("contentBlockDelta", {})
        if delta.get("contentBlockIndex") == index:
            inner = delta["delta"].get("reasoningContent", delta["delta"])
            parts.append(inner.get(kind, ""))
    return "".join(parts)


def test_text_stream_matches_nova() -> None:
    real = recorded("converse_stream_text_nova_micro")["events"]
    reply = texts(real, 0)
    mine = ours({"reply": reply, "usage": {"inputTokens": 13, "outputTokens": 82}})
    assert runs(mine) == runs(real)
    assert texts(mine, 0) == reply
    assert mine[-1]["metadata"]["usage"] == {
        "inputTokens": 13,
        "outputTokens": 82,
        "totalTokens": 95,
    }


def test_reasoning_stream_matches_claude() -> None:
    real = recorded("converse_stream_reasoning_claude_sonnet4")["events"]
    thinking, signature = texts(real, 0), texts(real, 0, "signature")
    mine = ours({"reasoning": {"text": thinking, "signature": signature}, "reply": texts(real, 1)})
    assert runs(mine) == runs(real)
    assert (texts(mine, 0), texts(mine, 0, "signature")) == (thinking, signature)


def test_redacted_reasoning_stream_matches_claude() -> None:
    real = recorded("converse_stream_redacted_reasoning_claude37")["events"]
    redacted = [texts(real, i, "redactedContent") for i in (0, 1)]
    mine = ours({"reasoning": [{"redacted": r} for r in redacted], "reply": texts(real, 2)})
    assert runs(mine) == runs(real)
    assert [texts(mine, i, "redactedContent") for i in (0, 1)] == redacted


def test_tool_stream_matches_nova() -> None:
    real = recorded("converse_stream_tool_use_nova_micro")["events"]
    start = next(e["contentBlockStart"] for e in real if "contentBlockStart" in e)
    tool = start["start"]["toolUse"]
    call = {"name": tool["name"], "id": tool["toolUseId"], "input": {"city": "Paris"}}
    mine = ours({"reply": texts(real, 0), "tool_calls": [call]})
    assert runs(mine) == runs(real)
    mine_start = next(e["contentBlockStart"] for e in mine if "contentBlockStart" in e)
    assert mine_start["start"] == start["start"] and mine_start["contentBlockIndex"] == 1
    fragments = "".join(
        e["contentBlockDelta"]["delta"]["toolUse"]["input"]
        for e in mine
        if "toolUse" in e.get("contentBlockDelta", {}).get("delta", {})
    )
    assert json.loads(fragments) == {"city": "Paris"}
    assert mine[-2]["messageStop"]["stopReason"] == "tool_use"


def test_recorded_event_streams_decode_like_ours() -> None:
    """Our frames carry exactly the headers every recorded frame carries."""
    body = base64.b64decode(recorded("converse_stream_text_nova_micro")["body_eventstream_base64"])
    real_headers = {frozenset(m.headers) for m in decode(body)}
    mine = decode(b"".join(stream_plan(script_for({})).frames))
    assert {frozenset(m.headers) for m in mine} == real_headers


def test_converse_body_matches_claude() -> None:
    real = recorded("converse_text_claude_sonnet45")["body"]
    mine = converse_response(script_for({"reply": "Paris."}), 12)
    assert set(mine) == set(real)
    assert set(mine["usage"]) <= set(real["usage"])
    assert mine["output"]["message"] == {"role": "assistant", "content": [{"text": "Paris."}]}
    assert mine["metrics"] == {"latencyMs": 12}


def test_converse_tool_and_reasoning_blocks_match_claude() -> None:
    real = recorded("converse_tool_use_with_reasoning_claude37")["body"]
    real_content = real["output"]["message"]["content"]
    reasoning = real_content[0]["reasoningContent"]["reasoningText"]
    tool = real_content[2]["toolUse"]
    script = script_for(
        {
            "reasoning": reasoning,
            "reply": real_content[1]["text"],
            "tool_calls": [{"name": tool["name"], "input": tool["input"], "id": tool["toolUseId"]}],
        }
    )
    mine = converse_response(script, 0)
    assert mine["output"]["message"]["content"] == real_content
    assert mine["stopReason"] == real["stopReason"] == "tool_use"


def test_redacted_reasoning_in_a_converse_body() -> None:
    mine = converse_response(script_for({"reasoning": {"redacted": "cmVk"}}), 0)
    assert mine["output"]["message"]["content"][0] == {
        "reasoningContent": {"redactedContent": "cmVk"}
    }


def test_every_event_is_padded_like_bedrock() -> None:
    events = stream_events(script_for({"reply": "one two three four five six seven"}))
    paddings = [payload["p"] for _, payload in events]
    assert all(p and ALPHABET.startswith(p) for p in paddings)
    assert len({len(p) for p in paddings}) > len(paddings) // 2
    assert "p" not in converse_response(script_for({}), 0)


def test_omit_metadata_and_latency() -> None:
    assert [name for name, _ in stream_events(script_for({"omit_metadata": True}))][
        -1
    ] == "messageStop"
    events = stream_events(script_for({"reply": "a b", "delay_ms": 10, "first_token_delay_ms": 5}))
    assert events[-1][1]["metrics"] == {"latencyMs": 5 + 10 * (len(events) - 1)}
    assert stream_events(script_for({"latency_ms": 7}))[-1][1]["metrics"] == {"latencyMs": 7}


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [(None, ["a", " bb", " c "]), (2, ["a b", "b c "]), (99, list("a bb c "))],
)
def test_text_pieces(chunks: int | None, expected: list[str]) -> None:
    assert text_pieces("a bb c ", chunks) == expected


def test_input_fragments_start_empty_and_rebuild_the_json() -> None:
    assert input_fragments("{}") == ["", "{", "}"]
    assert input_fragments('{"city":"Paris"}') == ["", '{"cit', 'y":"P', 'aris"}']


def test_empty_reply_still_has_a_text_block() -> None:
    events = stream_events(script_for({"reply": ""}))
    assert [name for name, _ in events][:3] == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockStop",
    ]
    assert events[1][1]["delta"] == {"text": ""}


def test_stream_plan_paces_and_cuts() -> None:
    plan = stream_plan(script_for({"reply": "a b", "delay_ms": 100, "first_token_delay_ms": 50}))
    assert plan.pauses == pytest.approx([0.0, 0.15, 0.1, 0.1, 0.1, 0.1])
    assert not plan.drop_connection

    failing = stream_plan(
        script_for({"stream_error": {"after_events": 2, "type": "validationException"}})
    )
    decoded = decode(b"".join(failing.frames))
    assert [m.headers.get(":message-type") for m in decoded] == ["event", "event", "exception"]
    assert decoded[-1].headers[":exception-type"] == "validationException"

    dropped = stream_plan(script_for({"stream_error": {"after_events": 0}, "disconnect_after": 3}))
    (only,) = decode(b"".join(dropped.frames))
    assert json.loads(only.payload) == {
        "message": "The model stream was interrupted by an error.",
        "originalMessage": "The model stream was interrupted by an error.",
        "originalStatusCode": 500,
    }
    assert dropped.drop_connection
    assert len(stream_plan(script_for({"disconnect_after": 2})).frames) == 2
