"""What one answer will be, once its script is resolved: plain frozen data, no behaviour.

`script.py` builds these from a request; `answers.py` turns them into Converse JSON and
stream events; `app.py` serves them. Keeping the data apart lets each of those stay small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Fault", "InvokeScript", "Reasoning", "Script", "StreamError", "ToolCall", "Usage"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One toolUse block; `id` is scripted or derived from the call, never random."""

    id: str
    name: str
    input: dict[str, Any]
    input_json: str
    """`input` as the compact JSON the stream delivers in fragments."""


@dataclass(frozen=True, slots=True)
class Reasoning:
    """Either `text` (with an optional `signature`) or `redacted` (base64), never both."""

    text: str | None = None
    signature: str | None = None
    redacted: str | None = None


@dataclass(frozen=True, slots=True)
class Fault:
    """Answer with the HTTP error `name`: always, or only for the first `times` requests that
    carry `key` (counted by the app, which is the only place with memory)."""

    name: str
    message: str | None
    times: int | None = None
    key: str | None = None


@dataclass(frozen=True, slots=True)
class StreamError:
    """An exception frame after `after_events` events; the `original_*` fields are set only
    for `modelStreamErrorException`, the one shape that has them."""

    after_events: int
    type: str
    message: str
    original_status_code: int | None
    original_message: str | None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts; cache fields stay None (and off the wire) unless scripted."""

    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int | None = None
    cache_write_input_tokens: int | None = None
    cache_write_ttl: str = "5m"  # the lifetime `cacheDetails` reports the writes under

    @property
    def total_tokens(self) -> int:
        """Like Bedrock: input + output + cache read + cache write."""
        return (
            self.input_tokens
            + self.output_tokens
            + (self.cache_read_input_tokens or 0)
            + (self.cache_write_input_tokens or 0)
        )

    def to_wire(self) -> dict[str, Any]:
        """The `usage` object of a Converse body or a metadata event."""
        wire: dict[str, Any] = {
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
        }
        if self.cache_read_input_tokens is not None:
            wire["cacheReadInputTokens"] = self.cache_read_input_tokens
        if self.cache_write_input_tokens is not None:
            wire["cacheWriteInputTokens"] = self.cache_write_input_tokens
        wire["totalTokens"] = self.total_tokens
        if self.cache_write_input_tokens:
            # Bedrock splits cache writes by lifetime (captured: [{inputTokens, ttl "5m"}]).
            wire["cacheDetails"] = [
                {"inputTokens": self.cache_write_input_tokens, "ttl": self.cache_write_ttl}
            ]
        return wire


@dataclass(frozen=True, slots=True)
class Script:
    """Everything one Converse / ConverseStream answer will be (see SCRIPTING.md)."""

    reply: str
    chunks: int | None
    delay_ms: float
    first_token_delay_ms: float
    usage: Usage
    stop_reason: str
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: tuple[Reasoning, ...] = ()
    fault: Fault | None = None
    stream_error: StreamError | None = None
    disconnect_after: int | None = None
    omit_metadata: bool = False
    latency_ms: int | None = None
    service_tier: str | None = None  # echoed as `serviceTier` when the request asked for one
    # With a guardrail in the request: "INTERVENED" or "NONE" (InvokeModel's words); None
    # without one. `guardrail_traced`: its trace was asked for.
    guardrail_action: str | None = None
    guardrail_traced: bool = False


@dataclass(frozen=True, slots=True)
class InvokeScript:
    """What a directive can ask of InvokeModel (embeddings): fail, or be slow."""

    fault: Fault | None = None
    delay_ms: float = 0.0
