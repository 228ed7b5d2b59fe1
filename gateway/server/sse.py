"""Server-sent events as OpenAI streams them: `data: <json>` frames and a final `[DONE]`.

This is the streaming hot path, run once per token: plain dicts in, bytes out, no pydantic
and no model validation. JSON is compact and keeps non-ASCII characters as UTF-8, which is
what OpenAI sends and a third of the bytes of `\\u` escapes for most scripts. A JSON
string never contains a raw newline, so one event is always exactly one `data:` line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.errors import GatewayError

__all__ = ["DONE", "encode_chunk", "encode_error", "error_body"]

DONE = b"data: [DONE]\n\n"


def encode_chunk(chunk: Mapping[str, Any]) -> bytes:
    """One `chat.completion.chunk` as an SSE event."""
    return b"data: " + _json(chunk) + b"\n\n"


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
