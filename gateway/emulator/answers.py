"""Turn a resolved Script into Bedrock's wire shapes: a Converse body or ConverseStream frames.

The shapes follow real captures (see /work/shared/fixtures): stream payloads are compact
JSON with sorted keys and a `"p"` padding field, text blocks have no contentBlockStart,
a tool call opens with contentBlockStart and delivers its input as JSON text fragments (the
first one empty), a reasoning signature arrives as its own delta, and `totalTokens`
includes cached tokens. The non-streaming body has no padding.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from typing import Any

from gateway.emulator.errors import error_body
from gateway.emulator.eventstream import event_frame, exception_frame
from gateway.emulator.plan import Script
from gateway.emulator.script import word_pieces

__all__ = [
    "StreamPlan",
    "converse_response",
    "guardrail_trace",
    "input_fragments",
    "latency_ms",
    "pause_ms",
    "scripted_failures",
    "stream_events",
    "stream_plan",
    "text_pieces",
]

Event = tuple[str, dict[str, Any]]

_PADDING = string.ascii_lowercase + string.ascii_uppercase + string.digits
_CONTENT_EVENTS = ("contentBlockStart", "contentBlockDelta")


def _padding(index: int) -> str:
    """Bedrock pads each event to a random length; here the length follows the event index."""
    return _PADDING[: 1 + (index * 37 + 19) % len(_PADDING)]


def text_pieces(text: str, chunks: int | None) -> list[str]:
    """The text deltas: one per word, or `chunks` near-equal slices (at most one per char)."""
    if chunks is None:
        return word_pieces(text)
    count = max(1, min(chunks, len(text)))
    size = len(text)
    return [text[i * size // count : (i + 1) * size // count] for i in range(count)]


def input_fragments(encoded: str) -> list[str]:
    """Tool input as streamed: an empty fragment, then the JSON text in up to three slices."""
    count = min(3, len(encoded))
    size = len(encoded)
    return ["", *(encoded[i * size // count : (i + 1) * size // count] for i in range(count))]


def _has_text_block(script: Script) -> bool:
    # A tool-only answer has no text block; any other answer has one, even if empty.
    return bool(script.reply) or not script.tool_calls


def pause_ms(script: Script, event_count: int) -> float:
    """The total scripted pause of a stream of `event_count` events."""
    return script.first_token_delay_ms + script.delay_ms * max(0, event_count - 1)


def latency_ms(script: Script, event_count: int) -> int:
    """`metrics.latencyMs`: scripted, or the total pause (`pause_ms`) rounded."""
    if script.latency_ms is not None:
        return script.latency_ms
    return round(pause_ms(script, event_count))


def converse_response(script: Script, latency: int) -> dict[str, Any]:
    """The Converse (non-streaming) response body."""
    content: list[dict[str, Any]] = []
    for reasoning in script.reasoning:
        if reasoning.redacted is not None:
            content.append({"reasoningContent": {"redactedContent": reasoning.redacted}})
            continue
        block: dict[str, Any] = {"text": reasoning.text}
        if reasoning.signature is not None:
            block["signature"] = reasoning.signature
        content.append({"reasoningContent": {"reasoningText": block}})
    if _has_text_block(script):
        content.append({"text": script.reply})
    for call in script.tool_calls:
        content.append({"toolUse": {"toolUseId": call.id, "name": call.name, "input": call.input}})
    body: dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": script.stop_reason,
        "usage": script.usage.to_wire(),
        "metrics": {"latencyMs": latency},
    }
    if script.service_tier is not None:
        body["serviceTier"] = {"type": script.service_tier}
    if script.guardrail_traced:
        body["trace"] = guardrail_trace(script)
    return body


def guardrail_trace(script: Script) -> dict[str, Any]:
    """A guardrail trace (Converse `trace`), reduced to its verdict."""
    intervened = script.guardrail_action == "INTERVENED"
    return {"guardrail": {"actionReason": "Guardrail blocked." if intervened else "No action."}}


def stream_events(script: Script) -> list[Event]:
    """Every ConverseStream event in order, each payload already padded."""
    events: list[Event] = [("messageStart", {"role": "assistant"})]

    def block(index: int, deltas: list[dict[str, Any]]) -> None:
        events.extend(
            ("contentBlockDelta", {"contentBlockIndex": index, "delta": d}) for d in deltas
        )
        events.append(("contentBlockStop", {"contentBlockIndex": index}))

    index = 0
    for reasoning in script.reasoning:
        if reasoning.redacted is not None:
            block(index, [{"reasoningContent": {"redactedContent": reasoning.redacted}}])
        else:
            deltas = [{"reasoningContent": {"text": t}} for t in word_pieces(reasoning.text or "")]
            if reasoning.signature is not None:
                deltas.append({"reasoningContent": {"signature": reasoning.signature}})
            block(index, deltas)
        index += 1
    if _has_text_block(script):
        block(index, [{"text": piece} for piece in text_pieces(script.reply, script.chunks)])
        index += 1
    for call in script.tool_calls:
        start = {"toolUse": {"toolUseId": call.id, "name": call.name}}
        events.append(("contentBlockStart", {"contentBlockIndex": index, "start": start}))
        block(index, [{"toolUse": {"input": part}} for part in input_fragments(call.input_json)])
        index += 1
    events.append(("messageStop", {"stopReason": script.stop_reason}))
    if not script.omit_metadata:
        latency = latency_ms(script, len(events) + 1)
        metadata = {"usage": script.usage.to_wire(), "metrics": {"latencyMs": latency}}
        if script.service_tier is not None:
            metadata["serviceTier"] = {"type": script.service_tier}
        if script.guardrail_traced:
            metadata["trace"] = guardrail_trace(script)
        events.append(("metadata", metadata))
    for position, (_, payload) in enumerate(events):
        payload["p"] = _padding(position)
    return events


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """The frames to send, the pause (seconds) before each, and whether to drop afterwards."""

    frames: list[bytes]
    pauses: list[float]
    drop_connection: bool


# One encoder for every frame: `json.dumps` with options builds a new encoder per call.
_EVENT_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def stream_plan(script: Script) -> StreamPlan:
    """Frames and pacing for a ConverseStream answer, in-stream error and disconnect applied."""
    events = stream_events(script)
    encode = _EVENT_JSON.encode
    frames = [event_frame(name, encode(payload).encode()) for name, payload in events]
    delay = script.delay_ms / 1000
    pauses = [0.0] + [delay] * (len(frames) - 1)
    first_content = next((i for i, (name, _) in enumerate(events) if name in _CONTENT_EVENTS), None)
    if first_content is not None:
        pauses[first_content] += script.first_token_delay_ms / 1000
    return scripted_failures(script, frames, pauses)


def scripted_failures(script: Script, frames: list[bytes], pauses: list[float]) -> StreamPlan:
    """A stream plan with the script's in-stream error and disconnect applied (the same for
    ConverseStream and Claude's InvokeModelWithResponseStream)."""
    delay = script.delay_ms / 1000
    failure = script.stream_error
    if failure is not None:
        cut = min(failure.after_events, len(frames))
        extra: dict[str, Any] = {}
        if failure.original_status_code is not None:
            extra["originalStatusCode"] = failure.original_status_code
        if failure.original_message is not None:
            extra["originalMessage"] = failure.original_message
        frame = exception_frame(failure.type, error_body(failure.message, **extra))
        frames = [*frames[:cut], frame]
        pauses = [*pauses[:cut], delay if cut else 0.0]
    drop = script.disconnect_after is not None
    if script.disconnect_after is not None:
        frames = frames[: script.disconnect_after]
        pauses = pauses[: script.disconnect_after]
    return StreamPlan(frames, pauses, drop)
