"""The frame encoder, checked by botocore's own decoder (which verifies both CRCs)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamMessage
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.emulator.answers import stream_plan
from gateway.emulator.eventstream import encode_frame, encode_headers, event_frame, exception_frame
from gateway.emulator.script import parse_script
from tests.emulator.conftest import decode, user

CAPTURE = Path("/work/shared/fixtures/converse-stream-text-then-tool.eventstream")


header_names = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)


@settings(max_examples=60, deadline=None)
@given(
    headers=st.dictionaries(header_names, st.text(max_size=80), max_size=5),
    payload=st.binary(max_size=3000),
    step=st.integers(min_value=1, max_value=64),
)
def test_frames_round_trip_through_botocore(
    headers: dict[str, str], payload: bytes, step: int
) -> None:
    frame = encode_frame(encode_headers(headers.items()), payload)
    (message,) = decode(frame, step)
    assert message.headers == headers
    assert message.payload == payload
    assert message.prelude.total_length == len(frame)


def test_event_and_exception_headers() -> None:
    (event,) = decode(event_frame("contentBlockDelta", b'{"a":1}'))
    assert event.headers == {
        ":event-type": "contentBlockDelta",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    (error,) = decode(exception_frame("throttlingException", b'{"message":"slow"}'))
    assert error.headers == {
        ":exception-type": "throttlingException",
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    assert error.to_response_dict()["status_code"] == 400  # what makes botocore raise


@pytest.mark.parametrize("position", [3, 9, 20, -1])
def test_a_flipped_byte_fails_the_checksum(position: int) -> None:
    frame = bytearray(event_frame("messageStop", b'{"stopReason":"end_turn"}'))
    frame[position] ^= 0x01
    with pytest.raises(ChecksumMismatch):
        decode(bytes(frame))


def test_oversized_headers_are_refused() -> None:
    with pytest.raises(ValueError):
        encode_headers([("x", "v" * 70_000)])


def _shape(message: EventStreamMessage) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """Event name, payload keys and delta kinds: what must match, unlike text and lengths."""
    payload: dict[str, Any] = json.loads(message.payload)
    inner = payload.get("delta") or payload.get("start") or {}
    return message.headers[":event-type"], tuple(sorted(payload)), tuple(sorted(inner))


def test_our_frames_match_the_real_capture() -> None:
    real = decode(CAPTURE.read_bytes())
    assert len(real) == 25
    real_events = [json.loads(m.payload) for m in real]
    text = "".join(e["delta"]["text"] for e in real_events if "text" in e.get("delta", {}))
    script = {
        "reply": text,
        "tool_calls": [
            {"name": "cosine", "input": {"x": 7}, "id": "tooluse_QklrEHKjRu6Oc4BQUfy7ZQ"}
        ],
        "usage": {"inputTokens": 386, "outputTokens": 75},
    }
    ours = decode(b"".join(stream_plan(parse_script({"messages": user("cos 7?", script)})).frames))

    assert {frozenset(m.headers.items()) for m in ours} == {
        frozenset(m.headers.items()) for m in real
    }

    # The same sequence of event kinds once runs of deltas are collapsed, with the same keys
    # ("metadata" aside: the capture also has `serviceTier`).
    def runs(messages: list[EventStreamMessage]) -> list[Any]:
        shapes = [_shape(m) for m in messages if m.headers[":event-type"] != "metadata"]
        return [key for key, _ in itertools.groupby(shapes)]

    assert runs(ours) == runs(real)
    ours_events = [json.loads(m.payload) for m in ours]
    assert ours_events[-1]["usage"] == real_events[-1]["usage"]
    assert ours_events[-2]["stopReason"] == real_events[-2]["stopReason"] == "tool_use"
    assert all(
        m.payload == json.dumps(e, sort_keys=True, separators=(",", ":")).encode()
        for m, e in zip(ours, ours_events, strict=True)
    )
    fragments = [
        e["delta"]["toolUse"]["input"] for e in ours_events if "toolUse" in e.get("delta", {})
    ]
    assert fragments[0] == "" and json.loads("".join(fragments)) == {"x": 7}
