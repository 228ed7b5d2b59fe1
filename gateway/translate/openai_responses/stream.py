"""ConverseStream events as Responses API server-sent events, bytes per Bedrock event.

One `ResponsesStream` per request, in the shape of the chat pair's `StreamTranslator`:
`start()` gives the opening events once Bedrock has accepted the call (the HTTP status is
decided by then), `feed(event)` the bytes for one aiobotocore event (often none),
`finish()` what is still owed when Bedrock's stream ended, `fail(name, message)` the last
events after a mid-stream Bedrock exception. No I/O and no pydantic per event: dicts in,
orjson bytes out.

The event sequence (OpenAI's; every event has a `sequence_number`, 0, 1, ... in order):
`response.created`, `response.in_progress`; per output item `response.output_item.added`,
its content events (`response.content_part.added`, `response.output_text.delta` /
`.done`, `response.content_part.done`; `response.function_call_arguments.delta` /
`.done`; `response.reasoning_text.delta` / `.done` and, with a summary asked for, the
`response.reasoning_summary_*` events), `response.output_item.done`; then
`response.completed`, or `response.incomplete` (`INCOMPLETE` in `.response`), with usage.
After a failure: an `error` event, then `response.failed`.

Timing quirks, as in the chat stream: Bedrock sends `metadata` (usage) after
`messageStop`, so the items close at `messageStop` and the final event waits for the
usage; a stream that ends without either still ends with `response.completed` from
`finish()`. Tool calls are keyed by `contentBlockIndex`, text blocks have no start event.
Structured output is streamed as the text of a message item; text that streams before the
answer tool starts is held back and dropped once it does (sent at the end if it never
does), as in chat.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Collection, Mapping
from typing import Any

import orjson

from gateway.translate.openai_responses.output import Event, OutputItems
from gateway.translate.openai_responses.response import (
    INCOMPLETE,
    ResponseEcho,
    envelope,
    responses_usage,
)
from gateway.translate.shared.errors import to_upstream_error
from gateway.translate.shared.finish_reasons import served_tier

__all__ = ["ResponsesStream", "encode_event"]


def encode_event(event: Mapping[str, Any]) -> bytes:
    """One Responses event as an SSE frame: `event:` line, then the JSON `data:` line."""
    try:
        data = orjson.dumps(event)
    except orjson.JSONEncodeError:  # a lone surrogate: escaped JSON still says what arrived
        data = json.dumps(event, separators=(",", ":")).encode("ascii")
    return b"event: " + str(event["type"]).encode("ascii") + b"\ndata: " + data + b"\n\n"


class ResponsesStream:
    """Turns one ConverseStream into Responses events; see the module docstring."""

    def __init__(
        self,
        echo: ResponseEcho,
        *,
        response_id: str,
        model: str,
        created_at: int,
        tool_names: Mapping[str, str] | None = None,
        namespaced: Mapping[str, tuple[str, str]] | None = None,
        custom: Collection[str] = (),
        structured_output_tool: str | None = None,
        reasoning_key: bytes | None = None,
        expose_reasoning: bool = True,
    ) -> None:
        self._echo = echo
        self._id = response_id
        self._model = model
        self._created = created_at
        self._pending: list[Event] = []
        self._output = OutputItems(
            response_id=response_id,
            tool_names=tool_names,
            namespaced=namespaced,
            custom=custom,
            summary=echo.summary,
            reasoning_key=reasoning_key,
            expose_reasoning=expose_reasoning,
            events=self._pending,
        )
        self._structured_tool = structured_output_tool
        self._answer_block: int | None = None
        self._answer_has_input = False
        self._held: list[str] = []
        self._sequence = 0
        self._text_target: tuple[str, int] | None = None  # the item `_text_head` is for
        self._text_head = b""
        self._stopped = False
        self._done = False
        self._usage: dict[str, Any] | None = None
        self._service_tier: str | None = None
        self._stop_reason: str | None = None
        self.unknown_events = 0
        self.final: dict[str, Any] | None = None  # the last response object sent

    @property
    def usage(self) -> dict[str, Any] | None:
        """Bedrock's own `TokenUsage`, once its metadata event has arrived."""
        return self._usage

    @property
    def service_tier(self) -> str | None:
        """The tier Bedrock served the stream on (metadata `serviceTier`), None if unsaid."""
        return self._service_tier

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    @property
    def encrypted(self) -> dict[str, str]:
        """Reasoning item id -> its `encrypted_content`, shown to the client or not."""
        return self._output.encrypted

    @property
    def output_chars(self) -> int:
        return self._output.output_chars

    def estimated_output_tokens(self) -> int:
        """Four characters a token, for the ledger when Bedrock's usage never came."""
        return -(-self._output.output_chars // 4)

    def start(self) -> bytes:
        response = self._response("in_progress", [], usage=None)
        self._pending.append({"type": "response.created", "response": response})
        self._pending.append({"type": "response.in_progress", "response": response})
        return self._drain()

    def feed(self, event: Mapping[str, Any]) -> bytes:
        # Deltas, most of a stream, by plain lookups: the pattern below would copy the
        # event's body for `**rest` and take a few microseconds per event to match.
        body = event.get("contentBlockDelta")
        if type(body) is dict and type(delta := body.get("delta")) is dict:
            text = delta.get("text")
            if type(text) is str and self._structured_tool is None and not self._pending:
                frame = self._text_delta(text)
                if frame is not None:
                    return frame
            self._delta(body.get("contentBlockIndex"), delta)
            return self._drain() if self._pending else b""
        match event:
            case {"contentBlockDelta": {"delta": dict(delta), **rest}}:
                self._delta(rest.get("contentBlockIndex"), delta)
            case {"contentBlockStart": {"contentBlockIndex": int(block), "start": dict(start)}}:
                self._block_start(block, start)
            case {"contentBlockStop": {"contentBlockIndex": int(block)}}:
                self._block_stop(block)
            case {"messageStart": _}:
                pass
            case {"messageStop": dict(stop)}:
                reason = stop.get("stopReason")
                self._stop_reason = reason if isinstance(reason, str) else None
                self._close_items()
            case {"metadata": dict(metadata)}:
                usage = metadata.get("usage")
                if isinstance(usage, Mapping):
                    self._usage = dict(usage)
                self._service_tier = served_tier(metadata) or self._service_tier
                if self._stopped:
                    self._complete()
            case _:
                self.unknown_events += 1
        return self._drain() if self._pending else b""

    def finish(self) -> bytes:
        """What is owed once Bedrock's stream ended normally (normally nothing)."""
        if not self._done:
            self._close_items()
            self._complete()
        return self._drain()

    def fail(self, name: str, message: str) -> bytes:
        """An `error` event and `response.failed`, after a mid-stream Bedrock exception."""
        if self._done:
            return b""
        self._done = True
        error = to_upstream_error(name, message)
        code = error.code or error.type
        self._pending.append(
            {"type": "error", "code": code, "message": error.message, "param": None}
        )
        response = self._response(
            "failed",
            self._output.items,
            usage=responses_usage(self._usage) if self._usage else None,
            error={"code": code, "message": error.message},
        )
        self._pending.append({"type": "response.failed", "response": response})
        self.final = response
        return self._drain()

    # -- content --------------------------------------------------------------------------

    def _text_delta(self, text: str) -> bytes | None:
        """The frame of one `response.output_text.delta` inside an announced message item,
        written from a per-item template: the same bytes as `encode_event` of the event
        `OutputItems.text` would queue, without building and encoding that event (most of
        a stream's events are these). None: the general path applies."""
        target = self._output.continue_text(text)
        if target is None:
            return None
        if target != self._text_target:
            item_id, index = target
            self._text_target = target
            self._text_head = (
                b"event: response.output_text.delta\ndata: "
                b'{"type":"response.output_text.delta","item_id":'
                + orjson.dumps(item_id)
                + b',"output_index":'
                + str(index).encode()
                + b',"content_index":0,"delta":'
            )
        try:
            delta = orjson.dumps(text)
        except orjson.JSONEncodeError:  # a lone surrogate: escaped, as `encode_event` does
            delta = json.dumps(text).encode("ascii")
        sequence = self._sequence
        self._sequence = sequence + 1
        return (
            self._text_head
            + delta
            + b',"logprobs":[],"sequence_number":'
            + str(sequence).encode()
            + b"}\n\n"
        )

    def _delta(self, block: Any, delta: Mapping[str, Any]) -> None:
        text = delta.get("text")
        if type(text) is str and self._structured_tool is None:
            self._output.text(text)  # the common case, as the first pattern below
            return
        match delta:
            case {"text": str(text)}:
                if self._structured_tool is None:
                    self._output.text(text)
                elif self._answer_block is None:
                    self._held.append(text)
            case {"toolUse": {"input": str(fragment)}} if (
                self._answer_block is not None and block == self._answer_block
            ):
                self._answer_has_input = self._answer_has_input or bool(fragment)
                self._output.text(fragment)
            case {"toolUse": {"input": str(fragment)}}:
                self._output.call_arguments(block, fragment)
            case {"reasoningContent": {"text": str(text)}}:
                self._output.reasoning_text(text)
            case {"reasoningContent": {"signature": str(signature)}}:
                self._output.reasoning_signature(signature)
            case {"reasoningContent": {"redactedContent": bytes() | str() as blob}}:
                self._output.reasoning_redacted(blob if isinstance(blob, str) else _b64(blob))
            case _:
                pass  # citations and future delta types have no Responses event

    def _block_start(self, block: int, start: Mapping[str, Any]) -> None:
        match start:
            case {"toolUse": {"name": str(name)}} if name == self._structured_tool:
                if self._answer_block is None:
                    self._answer_block = block
                    self._held.clear()  # text before the answer is not part of the JSON
            case {"toolUse": {"toolUseId": str(call_id), "name": str(name)}}:
                self._output.call_start(block, call_id, name)
            case _:
                pass

    def _block_stop(self, block: int) -> None:
        if self._answer_block is not None and block == self._answer_block:
            if not self._answer_has_input:
                self._output.text("{}")
                self._answer_has_input = True
            return
        self._output.call_stop(block)

    # -- the end --------------------------------------------------------------------------

    def _close_items(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._held:
            self._output.text("".join(self._held))  # the model answered in plain text
            self._held.clear()
        self._output.finish()

    def _complete(self) -> None:
        if self._done:
            return
        self._done = True
        reason = INCOMPLETE.get(self._stop_reason or "")
        response = self._response(
            "incomplete" if reason else "completed",
            self._output.items,
            usage=responses_usage(self._usage),
            incomplete_reason=reason,
        )
        kind = "response.incomplete" if reason else "response.completed"
        self._pending.append({"type": kind, "response": response})
        self.final = response

    def _response(
        self,
        status: str,
        output: list[dict[str, Any]],
        *,
        usage: dict[str, Any] | None,
        incomplete_reason: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return envelope(
            self._echo,
            response_id=self._id,
            model=self._model,
            created_at=self._created,
            status=status,
            output=list(output),
            usage=usage,
            incomplete_reason=incomplete_reason,
            error=error,
            service_tier=self._service_tier or "default",
        )

    def _drain(self) -> bytes:
        frames = []
        for event in self._pending:
            event["sequence_number"] = self._sequence
            self._sequence += 1
            frames.append(encode_event(event))
        self._pending.clear()
        return b"".join(frames)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
