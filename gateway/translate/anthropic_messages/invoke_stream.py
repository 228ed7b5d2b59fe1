"""InvokeModelWithResponseStream -> Anthropic SSE bytes, one Bedrock event at a time.

Claude on Bedrock streams the Anthropic events themselves: each `chunk` event of the AWS
event stream carries one Anthropic event as JSON bytes (base64 on the wire; botocore
decodes it). So re-framing is almost a copy, and the hot event, `content_block_delta`
(text, input_json, thinking and signature deltas), is passed through as the bytes Bedrock
sent, without a JSON round trip. Only three events are opened:

* `message_start` -- its `model` is Bedrock's id; the client gets the name it sent. An
  Anthropic `ping` follows it, as Anthropic's API sends one there;
* `message_delta` -- carries the output token count so far;
* `message_stop` -- Bedrock adds `amazon-bedrock-invocationMetrics` (the counts it bills,
  cache reads and writes included): read for the ledger, taken out of what the client sees.

A guardrail's intervention (`amazon-bedrock-guardrailAction: INTERVENED`) is read on
`message_delta` or on the last chunk, `message_stop`, while Claude's `stop_reason` says
`end_turn`; the client gets Anthropic's `refusal` (CONTRACT v2). So `message_delta` alone
is held back until the next event: it is followed at once by `message_stop`, so nothing
waits, and its stop reason can still be corrected. Every other event goes out at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gateway.translate.anthropic_messages.invoke import GUARDRAIL_TRACE, MessagesUsage
from gateway.translate.shared.guardrails import GUARDRAIL_ACTION

__all__ = ["PING", "InvokeStreamEncoder", "sse_event"]

PING = b'event: ping\ndata: {"type":"ping"}\n\n'
_DELTA_PREFIX = b'{"type":"content_block_delta"'
_DELTA_HEAD = b"event: content_block_delta\ndata: "
_METRICS = "amazon-bedrock-invocationMetrics"


def sse_event(kind: str, data: Mapping[str, Any]) -> bytes:
    """One Anthropic SSE event: an `event:` line naming it, its JSON on a `data:` line."""
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class InvokeStreamEncoder:
    """One per request: `feed(event) -> bytes`; `usage` once the stream has ended."""

    def __init__(self, *, model: str) -> None:
        self._model = model
        self.usage = MessagesUsage()
        self.usage_reported = False  # message_start's usage, or Bedrock's invocation metrics
        self.metrics_seen = False
        self.stopped = False  # message_stop went out
        self.output_chars = 0  # content bytes sent, for the first-token time and estimates
        self.unknown_events = 0
        self._held: dict[str, Any] | None = None  # the message_delta not yet sent

    @property
    def guardrail_intervened(self) -> bool:
        return self.usage.guardrail_intervened

    def feed(self, event: Mapping[str, Any]) -> bytes:
        """A Bedrock stream event (`{"chunk": {"bytes": b"..."}}`) as SSE bytes."""
        chunk = event.get("chunk")
        if not isinstance(chunk, Mapping):
            self.unknown_events += 1
            return b""
        raw = chunk.get("bytes")
        if isinstance(raw, str):  # a JSON-lines golden, not botocore
            raw = raw.encode()
        if not isinstance(raw, bytes):
            self.unknown_events += 1
            return b""
        return self.feed_payload(raw)

    def feed_payload(self, raw: bytes) -> bytes:
        held = self._held
        if held is None:
            return self._encode(raw)
        self._held = None
        current = self._encode(raw)  # may be the message_stop that says "intervened"
        if self.usage.guardrail_intervened:
            _refusal(held)
        return sse_event("message_delta", held) + current

    def _encode(self, raw: bytes) -> bytes:
        if raw.startswith(_DELTA_PREFIX):
            self.output_chars += len(raw) - len(_DELTA_PREFIX)
            return _DELTA_HEAD + raw + b"\n\n"
        data = orjson.loads(raw)
        kind = data.get("type") if isinstance(data, dict) else None
        if not isinstance(kind, str):
            self.unknown_events += 1
            return b""
        match kind:
            case "message_start":
                message = data.get("message")
                if isinstance(message, dict):
                    message["model"] = self._model
                    usage = message.get("usage")
                    if isinstance(usage, dict) and not self.metrics_seen:
                        self.usage.take_anthropic(usage)
                        self.usage_reported = True
                return sse_event(kind, data) + PING
            case "message_delta":
                if data.pop(GUARDRAIL_ACTION, None) == "INTERVENED":
                    self.usage.guardrail_intervened = True
                if self.usage.guardrail_intervened:
                    _refusal(data)
                usage = data.get("usage")
                if isinstance(usage, dict) and not self.metrics_seen:
                    self._take_delta_usage(usage)
                self._held = data
                return b""
            case "message_stop":
                # Bedrock's, not Anthropic's: read, then taken out.
                if data.pop(GUARDRAIL_ACTION, None) == "INTERVENED":
                    self.usage.guardrail_intervened = True
                data.pop(GUARDRAIL_TRACE, None)
                metrics = data.pop(_METRICS, None)
                if isinstance(metrics, dict):
                    self.usage.take_invocation_metrics(metrics)
                    self.usage_reported = self.metrics_seen = True
                self.stopped = True
            case "content_block_start" | "content_block_delta":
                self.output_chars += len(raw)
            case _:
                pass
        return sse_event(kind, data)

    def flush(self) -> bytes:
        """A message_delta still held (a stream cut before its message_stop)."""
        held, self._held = self._held, None
        return b"" if held is None else sse_event("message_delta", held)

    def _take_delta_usage(self, usage: Mapping[str, Any]) -> None:
        # Cumulative counts; newer models repeat the input side here too.
        if "output_tokens" in usage:
            self.usage.output_tokens = int(usage.get("output_tokens") or 0)
        if usage.get("input_tokens") is not None:
            self.usage.input_tokens = int(usage["input_tokens"])
        if usage.get("cache_read_input_tokens") is not None:
            self.usage.cache_read_tokens = int(usage["cache_read_input_tokens"])
        if usage.get("cache_creation_input_tokens") is not None:
            self.usage.cache_write_tokens = int(usage["cache_creation_input_tokens"])


def _refusal(message_delta: dict[str, Any]) -> None:
    delta = message_delta.get("delta")
    if isinstance(delta, dict):
        delta["stop_reason"] = "refusal"
