"""`ResponsesStreamEncoder`: the Responses surface's `StreamEncoder` for `SSEResponse`.

A thin shell around `gateway.translate.openai_responses.stream.ResponsesStream`, which
already returns SSE bytes per Bedrock event: this adds the opening events to the first
bytes sent, hands the finished response to the surface for storing, and reports usage in
the pipeline's terms.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.bedrock.client import BedrockError
from gateway.pipeline.context import RequestContext
from gateway.translate.openai_responses.stream import ResponsesStream
from gateway.translate.shared.guardrails import GUARDRAIL_INTERVENED

__all__ = ["Keep", "ResponsesStreamEncoder", "output_text"]

# Called with the final response and the encrypted reasoning per item id, once.
Keep = Callable[[dict[str, Any], Mapping[str, str]], None]


class ResponsesStreamEncoder:
    """ConverseStream events as Responses SSE bytes (`StreamEncoder`); the opening events
    go out with the first bytes, and the finished response is stored."""

    __slots__ = ("_keep", "_started", "_stream")

    def __init__(self, stream: ResponsesStream, keep: Keep) -> None:
        self._stream = stream
        self._keep = keep
        self._started = False

    @property
    def output_chars(self) -> int:
        return self._stream.output_chars

    @property
    def unknown_events(self) -> int:
        return self._stream.unknown_events

    @property
    def guardrail_intervened(self) -> bool:
        return self._stream.stop_reason == GUARDRAIL_INTERVENED

    def feed(self, event: dict[str, Any]) -> bytes:
        data = self._stream.feed(event)
        if not self._started:
            self._started = True
            return self._stream.start() + data
        return data

    def close(self) -> bytes:
        data = self._stream.finish()
        if not self._started:
            self._started = True
            data = self._stream.start() + data
        final = self._stream.final
        if final is not None and final["status"] != "failed":
            self._keep(final, self._stream.encrypted)
        return data

    def fail(self, error: BedrockError) -> bytes:
        return self._stream.fail(error.name, error.message)

    def settle(self, ctx: RequestContext) -> bool:
        ctx.service_tier = self._stream.service_tier
        seen = self._stream.usage
        if seen is None:
            return False
        ctx.usage.take_converse(seen)
        return True

    def estimated_output_tokens(self) -> int:
        return self._stream.estimated_output_tokens()

    def completion(self) -> Any:
        final = self._stream.final
        return output_text(final) if final is not None else None


def output_text(response: Mapping[str, Any]) -> str:
    """The text of a response's message items (for the access log)."""
    return "".join(
        part.get("text", "")
        for item in response.get("output", ())
        if item.get("type") == "message"
        for part in item.get("content", ())
    )
