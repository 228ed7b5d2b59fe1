"""Server-sent events as OpenAI streams them: `data: <json>` frames and a final `[DONE]`.

This is the streaming hot path, run once per token: plain dicts in, bytes out, no pydantic
and no model validation. JSON is compact and keeps non-ASCII characters as UTF-8, which is
what OpenAI sends and a third of the bytes of `\\u` escapes for most scripts. A JSON
string never contains a raw newline, so one event is always exactly one `data:` line.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from gateway.errors import GatewayError

__all__ = ["DONE", "ChunkTemplate", "encode_chunk", "encode_error", "error_body"]

DONE = b"data: [DONE]\n\n"


def encode_chunk(chunk: Mapping[str, Any]) -> bytes:
    """One `chat.completion.chunk` as an SSE event."""
    return b"data: " + _json(chunk) + b"\n\n"


# Stands for the varying string while a `ChunkTemplate` is made. Its JSON, `"\u0000"`,
# shows in orjson's output only where a string of just that character is written (a quote
# inside a string is escaped), and the template is used only if it shows once.
_PROBE = "\x00"
_PROBE_JSON = orjson.dumps(_PROBE)


class ChunkTemplate:
    """`encode_chunk` for chunks that differ in one string only, from bytes made once.

    A stream's content chunks are one chunk but for the text of their delta: the bytes
    around that string are encoded once, and each chunk then costs the JSON of its text and
    a concatenation, not a dict and a whole `orjson.dumps` per token. The bytes are exactly
    `encode_chunk(make(text))`; whatever orjson cannot encode (a lone surrogate, in the
    text or in the chunk around it) goes through `encode_chunk` itself, as before.
    """

    __slots__ = ("_head", "_make", "_tail")

    def __init__(self, make: Callable[[str], Mapping[str, Any]]) -> None:
        self._make = make
        self._head: bytes | None = None
        self._tail = b""
        try:
            whole = orjson.dumps(make(_PROBE))
        except orjson.JSONEncodeError:
            return  # the ASCII-escaped fallback, for every chunk of this shape
        head, found, tail = whole.partition(_PROBE_JSON)
        if found and _PROBE_JSON not in tail:
            self._head = b"data: " + head
            self._tail = tail + b"\n\n"

    def encode(self, text: str) -> bytes:
        """`encode_chunk(make(text))`."""
        if self._head is not None:
            try:
                return self._head + orjson.dumps(text) + self._tail
            except orjson.JSONEncodeError:
                pass
        return encode_chunk(self._make(text))


def encode_error(payload: Mapping[str, Any]) -> bytes:
    """A mid-stream `{"error": {...}}` payload as an SSE event.

    Same framing as a chunk: the OpenAI SDKs look for an `error` key in each `data:` line
    and raise it as an API error.
    """
    return b"data: " + _json(payload) + b"\n\n"


def error_body(error: GatewayError) -> bytes:
    """A whole error response's body in the OpenAI shape."""
    return _json(error.to_openai())


def _json(value: Mapping[str, Any]) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        # A lone surrogate (a model can emit half of a pair, and JSON's `\\ud83d` escape
        # carries it through botocore) has no UTF-8 form; escaped JSON still says exactly
        # what arrived, and the stream goes on.
        return json.dumps(value, separators=(",", ":")).encode("ascii")
