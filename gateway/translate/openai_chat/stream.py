"""ConverseStream events as OpenAI `chat.completion.chunk` objects.

One `StreamTranslator` per request, in the shape of httpx's `LineDecoder`: `feed()` takes
each event dict as aiobotocore yields it (`{"contentBlockDelta": {...}}`) and returns the
chunks to send now, `flush()` returns what is still owed when Bedrock's stream has ended.
No I/O, so the endpoint owns timing, encoding and disconnects, and tests can replay
recorded streams event by event.

What the real stream does, and what OpenAI clients expect instead:

* Text blocks usually have no `contentBlockStart` (Claude, Nova); only tool calls do. We
  key tool calls by `contentBlockIndex` and give each our own `index` 0, 1, ... in order of
  appearance, because OpenAI's `tool_calls[].index` counts tool calls, not content blocks:
  the first tool call is index 0 whether text came before it or not.
* A tool's input arrives as string fragments, sometimes an empty one first. Empty
  fragments are dropped (the call's first delta already carries `arguments: ""`), and a
  call that ended with no input gets `"{}"`, so that the joined arguments always parse.
* gpt-oss sends an empty text delta; OpenAI sends `content: ""` only in the first chunk,
  with the role, so empty text and reasoning deltas produce nothing.
* Reasoning uses the message fields documented in `gateway.translate.openai_chat.response`:
  `reasoning_content` text, one `reasoning_signature` (Bedrock sends it as a delta of its
  own after the text), and `reasoning_redacted` as a one-item list per redacted block.
* `metadata` (usage) follows `messageStop` on the real service, but a stream where it comes
  first, or where `messageStop` never comes, must still end well: the usage chunk waits for
  the finish chunk, and `flush()` supplies a missing finish.
* `stopReason` `malformed_tool_use` / `malformed_model_output` (the answer is unusable):
  instead of a finish chunk, the OpenAI error payload (`error` holds it for the record),
  as `gateway.translate.shared.finish_reasons.stop_reason_error` describes.
* The metadata event's `serviceTier` (the tier Bedrock served the request on) is kept as
  `service_tier`, for the usage record.
* Structured output follows the rules in `gateway.translate.openai_chat.response`: the argument
  fragments of the `structured_output_tool` call are sent as `content` deltas (no
  `tool_calls` delta for it), "{}" if it had no input, and `finish_reason` is "stop"
  when it was the only call. Its content must be the JSON alone, but text may stream
  before the call when the model was asked rather than forced to make it, so with a
  structured-output tool, text is held back: dropped once the call starts, sent just
  before the finish chunk if it never does. Forced calls produce no text, so nothing
  is delayed in the usual case.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import UpstreamError
from gateway.translate.openai_chat.response import encode_redacted, openai_usage
from gateway.translate.shared.errors import to_upstream_error
from gateway.translate.shared.finish_reasons import finish_reason, served_tier, stop_reason_error

__all__ = ["StreamTranslator", "error_event"]

Chunk = dict[str, Any]


@dataclass(slots=True)
class _ToolCall:
    index: int
    has_arguments: bool = False
    open: bool = True


@dataclass(slots=True)
class _Answer:
    """The structured-output call whose input streams out as content."""

    block: int
    has_arguments: bool = False
    open: bool = True


class StreamTranslator:
    """Turns one ConverseStream into OpenAI chunks; the caller reads usage and timing state.

    Call `feed()` for each event and `flush()` once when the stream ended normally. After a
    failure the caller sends `error_event()` instead; `usage` still holds whatever Bedrock
    reported before it.
    """

    def __init__(
        self,
        *,
        completion_id: str,
        model: str,
        created: int,
        include_usage: bool,
        tool_names: Mapping[str, str] | None = None,
        structured_output_tool: str | None = None,
    ) -> None:
        self._id = completion_id
        self._model = model
        self._created = created
        self._include_usage = include_usage
        self._tool_names: Mapping[str, str] = tool_names or {}
        self._tools: dict[int, _ToolCall] = {}
        self._structured_tool = structured_output_tool
        self._structured: _Answer | None = None
        self._held_text: list[str] = []
        self._role_sent = False
        # Every text delta is one content chunk from now on (see `content_delta`): the role
        # chunk went out and no structured-output tool holds text back.
        self._plain_text = False
        self._signature_sent = False
        self._finished = False
        self._usage_sent = False
        self._usage: dict[str, Any] | None = None
        self._stop_reason: str | None = None
        self._finish_reason: str | None = None
        self._unknown_events = 0
        self._output_chars = 0
        self._service_tier: str | None = None
        self._error: UpstreamError | None = None

    @property
    def usage(self) -> dict[str, Any] | None:
        """Bedrock's own `TokenUsage` from the metadata event, or None if not seen yet."""
        return self._usage

    @property
    def stop_reason(self) -> str | None:
        """Bedrock's `stopReason`, or None while (or if) `messageStop` has not arrived."""
        return self._stop_reason

    @property
    def service_tier(self) -> str | None:
        """The tier Bedrock served the stream on (metadata `serviceTier`), None if unsaid."""
        return self._service_tier

    @property
    def error(self) -> UpstreamError | None:
        """The error sent instead of a finish chunk (a malformed answer), if any."""
        return self._error

    @property
    def finish_reason(self) -> str | None:
        """The `finish_reason` sent to the client, once it has been sent."""
        return self._finish_reason

    @property
    def unknown_events(self) -> int:
        """Events of a type we do not know; ignored, counted so that a new one gets noticed."""
        return self._unknown_events

    @property
    def output_chars(self) -> int:
        """Characters of text, reasoning text and tool arguments produced so far."""
        return self._output_chars

    def estimated_output_tokens(self) -> int:
        """Output tokens by the usual rule of four characters per token, rounded up.

        For the usage record when Bedrock's metadata never arrived (client gone, stream cut).
        Redacted reasoning is not counted: its length is that of ciphertext, not of tokens.
        """
        return -(-self._output_chars // 4)

    def content_delta(self, event: Mapping[str, Any]) -> str | None:
        """The text of `event` if it is the stream's common case, else None.

        The common case is a text delta that makes exactly one chunk, `content_chunk(text)`,
        and nothing else: no role chunk still owed, no structured-output tool holding text
        back, not empty. Its state is then taken in as `feed` would; any other event is left
        untouched, for `feed`. This is most of a stream's events, so the encoder writes
        their chunk from bytes it prepared once instead of a chunk dict per token, and the
        test is plain lookups, not `feed`'s patterns (which copy the event to match it).
        """
        body = event.get("contentBlockDelta")
        if type(body) is not dict or not self._plain_text:
            return None
        delta = body.get("delta")
        if type(delta) is not dict:
            return None
        text = delta.get("text")
        if type(text) is not str or not text:
            return None
        self._output_chars += len(text)
        return text

    def content_chunk(self, text: str) -> Chunk:
        """The chunk `content_delta` stands for: `text` as the delta's `content`."""
        return self._chunk({"content": text})

    def feed(self, event: Mapping[str, Any]) -> list[Chunk]:
        """The chunks to send for one ConverseStream event (often none)."""
        match event:
            case {"messageStart": _}:
                return self._start()
            case {"contentBlockStart": {"contentBlockIndex": int(block), "start": dict(start)}}:
                return self._block_start(block, start)
            case {"contentBlockDelta": {"delta": dict(delta), **rest}}:
                return self._block_delta(rest.get("contentBlockIndex"), delta)
            case {"contentBlockStop": {"contentBlockIndex": int(block)}}:
                return self._block_stop(block)
            case {"messageStop": dict(stop)}:
                return self._message_stop(stop.get("stopReason"))
            case {"metadata": dict(metadata)}:
                return self._metadata(metadata)
            case _:
                # botocore yields `{}` for an event type its service model does not name;
                # a newer botocore may yield one we do not. Neither is worth failing for.
                self._unknown_events += 1
                return []

    def flush(self) -> list[Chunk]:
        """The chunks still owed once Bedrock's stream ended normally.

        Normally nothing. Without a `messageStop` the client still gets its one finish
        chunk: `tool_calls` if any tool call was started (its arguments are complete as far
        as we know), else `stop`; `stop_reason` stays None to show Bedrock never said.
        """
        if self._finished:
            return []
        return self._finish("tool_calls" if self._tools else "stop")

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> Chunk:
        chunk: Chunk = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self._include_usage:
            # OpenAI: with include_usage every chunk has `usage`, null except the last.
            chunk["usage"] = None
        return chunk

    def _start(self) -> list[Chunk]:
        if self._role_sent:
            return []
        self._role_sent = True
        self._plain_text = self._structured_tool is None
        return [self._chunk({"role": "assistant", "content": "", "refusal": None})]

    def _block_start(self, block: int, start: Mapping[str, Any]) -> list[Chunk]:
        match start:
            case {"toolUse": {"name": str(name)}} if name == self._structured_tool:
                if self._structured is None:
                    # The answer begins; text written before it is not part of the JSON.
                    self._structured = _Answer(block)
                    self._held_text.clear()
                return self._start()
            case {"toolUse": {"toolUseId": str(call_id), "name": str(name)}}:
                if block in self._tools:
                    return []
                tool = self._tools[block] = _ToolCall(index=len(self._tools))
                call = {
                    "index": tool.index,
                    "id": call_id,
                    "type": "function",
                    "function": {"name": self._tool_names.get(name, name), "arguments": ""},
                }
                return [*self._start(), self._chunk({"tool_calls": [call]})]
            case _:
                # Only tool calls announce themselves with data we forward.
                return []

    def _block_delta(self, block: Any, delta: Mapping[str, Any]) -> list[Chunk]:
        match delta:
            case {"text": str(text)} if self._structured_tool is not None:
                if self._structured is None:
                    self._held_text.append(text)
                self._output_chars += len(text)
                return []
            case {"text": str(text)}:
                return self._content("content", text)
            case {"toolUse": {"input": str(fragment)}} if (
                self._structured is not None and block == self._structured.block
            ):
                self._structured.has_arguments = self._structured.has_arguments or bool(fragment)
                return self._content("content", fragment)
            case {"toolUse": {"input": str(fragment)}}:
                tool = self._tools.get(block) if isinstance(block, int) else None
                if tool is None or not fragment:
                    # A fragment of a call that never started has no id or name to send.
                    return []
                tool.has_arguments = True
                self._output_chars += len(fragment)
                return [*self._start(), self._arguments(tool, fragment)]
            case {"reasoningContent": {"text": str(text)}}:
                return self._content("reasoning_content", text)
            case {"reasoningContent": {"signature": str(signature)}}:
                if self._signature_sent or not signature:
                    return []
                self._signature_sent = True
                return [*self._start(), self._chunk({"reasoning_signature": signature})]
            case {"reasoningContent": {"redactedContent": bytes() | str() as blob}}:
                redacted = [encode_redacted(blob)]
                return [*self._start(), self._chunk({"reasoning_redacted": redacted})]
            case _:
                # Citations and future delta types: OpenAI has no place for them.
                return []

    def _content(self, field: str, text: str) -> list[Chunk]:
        if not text:
            return []
        self._output_chars += len(text)
        return [*self._start(), self._chunk({field: text})]

    def _arguments(self, tool: _ToolCall, fragment: str) -> Chunk:
        call = {"index": tool.index, "function": {"arguments": fragment}}
        return self._chunk({"tool_calls": [call]})

    def _block_stop(self, block: int) -> list[Chunk]:
        if self._structured is not None and block == self._structured.block:
            return self._close_structured()
        tool = self._tools.get(block)
        if tool is None:
            return []
        return self._close_tool(tool)

    def _close_structured(self) -> list[Chunk]:
        answer = self._structured
        if answer is None or not answer.open:
            return []
        answer.open = False
        # An answer without input is the empty object, so the content always parses.
        return [] if answer.has_arguments else [self._chunk({"content": "{}"})]

    def _close_tool(self, tool: _ToolCall) -> list[Chunk]:
        if not tool.open:
            return []
        tool.open = False
        if tool.has_arguments:
            return []
        # A call without input, which Bedrock streams as no fragment or an empty one.
        return [self._arguments(tool, "{}")]

    def _message_stop(self, stop_reason: Any) -> list[Chunk]:
        if self._finished:
            return []
        self._stop_reason = stop_reason if isinstance(stop_reason, str) else None
        error = stop_reason_error(self._stop_reason)
        if error is not None:
            self._finished = True
            self._usage_sent = True  # an error is the stream's last payload
            self._error = error
            return [error.to_openai()]
        return self._finish(finish_reason(self._stop_reason))

    def _finish(self, reason: str) -> list[Chunk]:
        chunks = self._start()
        if self._held_text and "".join(self._held_text):
            # The model answered in text, not through the structured-output tool.
            chunks.append(self._chunk({"content": "".join(self._held_text)}))
        self._held_text.clear()
        chunks.extend(self._close_structured())
        for tool in self._tools.values():
            chunks.extend(self._close_tool(tool))
        if reason == "tool_calls" and self._structured is not None and not self._tools:
            reason = "stop"  # the only call was the answer itself
        self._finished = True
        self._finish_reason = reason
        chunks.append(self._chunk({}, reason))
        chunks.extend(self._usage_chunk())
        return chunks

    def _metadata(self, metadata: Mapping[str, Any]) -> list[Chunk]:
        usage = metadata.get("usage")
        if isinstance(usage, Mapping):
            self._usage = dict(usage)
        self._service_tier = served_tier(metadata) or self._service_tier
        return self._usage_chunk()

    def _usage_chunk(self) -> list[Chunk]:
        # The usage chunk is the last one OpenAI sends: it waits for the finish chunk.
        if not self._include_usage or self._usage_sent or not self._finished:
            return []
        if self._usage is None:
            return []
        self._usage_sent = True
        return [
            {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
                "choices": [],
                "usage": openai_usage(self._usage),
            }
        ]


def error_event(name: str, message: str) -> dict[str, Any]:
    """The last `data:` payload of a stream that failed after its first byte.

    By then the HTTP status is sent, so the failure travels as `{"error": {...}}`, the body
    a non-streaming request would have had (`GatewayError.to_openai()`); the OpenAI SDKs
    raise it as an `APIError`. `name` and `message` are those of the Bedrock failure.
    """
    return to_upstream_error(name, message).to_openai()
