"""ConverseStream events -> Anthropic SSE bytes, for the models that are not Claude.

Converse and Anthropic differ in three ways that decide the shape of this encoder:

* Converse sends no start for a text or reasoning block, only deltas: the first delta of a
  block opens it (`content_block_start`) here;
* Anthropic's block `index` is our own counter keyed by Converse's `contentBlockIndex`,
  never arithmetic on it;
* Converse reports usage in `metadata`, after `messageStop`: so `message_start` carries
  zero counts, and `message_delta` (with the stop reason and the whole usage) and
  `message_stop` go out when `metadata` arrives, or at `flush()` if it never does.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from gateway.translate.anthropic_messages.converse import STOP_REASONS, anthropic_usage
from gateway.translate.anthropic_messages.invoke import MessagesUsage
from gateway.translate.anthropic_messages.invoke_stream import PING, sse_event
from gateway.translate.shared.guardrails import GUARDRAIL_INTERVENED

__all__ = ["ConverseStreamEncoder"]


class ConverseStreamEncoder:
    """One per request: `feed(event) -> bytes`, `flush() -> bytes` at the end."""

    def __init__(self, *, message_id: str, model: str) -> None:
        self._id = message_id
        self._model = model
        self._indexes: dict[int, int] = {}  # contentBlockIndex -> our index
        self._open: int | None = None  # our index of the block still open
        self._stop_reason: str | None = None
        self._finished = False
        self.usage = MessagesUsage()
        self.usage_reported = False
        self.guardrail_intervened = False  # Bedrock's stopReason said so
        self.output_chars = 0
        self.unknown_events = 0

    def feed(self, event: Mapping[str, Any]) -> bytes:
        # Deltas, most of a stream, by plain lookups: matching the patterns below takes a
        # few microseconds per event (the delta's is the third to be tried).
        body = event.get("contentBlockDelta")
        if type(body) is dict:
            at, delta = body.get("contentBlockIndex"), body.get("delta")
            if type(at) is int and type(delta) is dict:
                return self._delta(at, delta)
        match event:
            case {"messageStart": _}:
                start: dict[str, Any] = {
                    "id": self._id,
                    "type": "message",
                    "role": "assistant",
                    "model": self._model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": anthropic_usage(MessagesUsage()),
                }
                return (
                    sse_event("message_start", {"type": "message_start", "message": start}) + PING
                )
            case {"contentBlockStart": {"contentBlockIndex": int(at), "start": {"toolUse": use}}}:
                first = {
                    "type": "tool_use",
                    "id": use.get("toolUseId"),
                    "name": use.get("name"),
                    "input": {},
                }
                return self._start(at, first)
            case {"contentBlockDelta": {"contentBlockIndex": int(at), "delta": dict(delta)}}:
                return self._delta(at, delta)
            case {"contentBlockStop": {"contentBlockIndex": int(at)}}:
                index = self._indexes.get(at)
                if index is None or self._open != index:
                    return b""
                self._open = None
                return sse_event(
                    "content_block_stop", {"type": "content_block_stop", "index": index}
                )
            case {"messageStop": dict(stop)}:
                reason = str(stop.get("stopReason") or "end_turn")
                self.guardrail_intervened = reason == GUARDRAIL_INTERVENED
                self._stop_reason = STOP_REASONS.get(reason, "end_turn")
                return b""
            case {"metadata": dict(metadata)}:
                raw = metadata.get("usage")
                if isinstance(raw, dict):
                    self.usage = MessagesUsage.from_converse(raw)
                    self.usage_reported = True
                return self._finish()
            case _:
                self.unknown_events += 1
                return b""

    def flush(self) -> bytes:
        """The end of a stream that never sent `metadata`."""
        return b"" if self._finished or self._stop_reason is None else self._finish()

    def _start(self, at: int, first: dict[str, Any]) -> bytes:
        out = b""
        if self._open is not None:  # Converse never interleaves blocks; close to be safe
            out = sse_event(
                "content_block_stop", {"type": "content_block_stop", "index": self._open}
            )
        index = self._indexes[at] = len(self._indexes)
        self._open = index
        self.output_chars += 1
        event = {"type": "content_block_start", "index": index, "content_block": first}
        return out + sse_event("content_block_start", event)

    def _delta(self, at: int, delta: Mapping[str, Any]) -> bytes:
        out = b""
        reasoning = delta.get("reasoningContent")
        if "text" in delta:
            payload: dict[str, Any] = {"type": "text_delta", "text": delta["text"]}
            first: dict[str, Any] = {"type": "text", "text": ""}
        elif "toolUse" in delta:
            payload = {
                "type": "input_json_delta",
                "partial_json": delta["toolUse"].get("input", ""),
            }
            first = {"type": "tool_use", "id": "", "name": "", "input": {}}
        elif isinstance(reasoning, dict) and "redactedContent" in reasoning:
            data = reasoning["redactedContent"]
            encoded = base64.b64encode(data).decode() if isinstance(data, bytes) else str(data)
            return self._start(at, {"type": "redacted_thinking", "data": encoded})
        elif isinstance(reasoning, dict) and "signature" in reasoning:
            payload = {"type": "signature_delta", "signature": reasoning["signature"]}
            first = {"type": "thinking", "thinking": "", "signature": ""}
        elif isinstance(reasoning, dict):
            payload = {"type": "thinking_delta", "thinking": reasoning.get("text", "")}
            first = {"type": "thinking", "thinking": "", "signature": ""}
        else:
            self.unknown_events += 1
            return b""
        if at not in self._indexes:
            out = self._start(at, first)
        self.output_chars += 1
        event = {"type": "content_block_delta", "index": self._indexes[at], "delta": payload}
        return out + sse_event("content_block_delta", event)

    def _finish(self) -> bytes:
        self._finished = True
        out = b""
        if self._open is not None:
            out = sse_event(
                "content_block_stop", {"type": "content_block_stop", "index": self._open}
            )
            self._open = None
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self._stop_reason or "end_turn", "stop_sequence": None},
            "usage": anthropic_usage(self.usage),
        }
        return (
            out
            + sse_event("message_delta", delta)
            + sse_event("message_stop", {"type": "message_stop"})
        )
