"""Request-body and response helpers shared by the handlers.

The body limit is enforced while reading (and from Content-Length before reading), so an
oversized upload is refused without being buffered whole.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope

from gateway.errors import InvalidRequestError, PayloadTooLargeError, RequestTimeoutError
from gateway.schemas.openai import validation_error_param
from gateway.server.deadlines import coarse_timeout

__all__ = ["json_response", "read_json", "validate"]

M = TypeVar("M", bound=BaseModel)

# orjson parses up to 1024 levels but writes at most 254, and the gateway writes bodies back
# out with it (Messages' InvokeModel body, stored responses, logged prompts); botocore
# writes Converse bodies with the standard library, whose recursion runs out near 950
# levels, and our own walks over blocks stay far below that. So a body orjson can write
# back is one every later step can take, and the limit is orjson's own (its recursion
# limit; `tests/test_http.py` pins it). No real request nests more than a few dozen levels.
MAX_NESTING = 254


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"Request body exceeds the gateway's limit of {limit} bytes.")


async def read_json(
    scope: Scope, receive: Receive, limit: int, *, timeout_s: float | None = None
) -> dict[str, Any]:
    """The body as a JSON object, at most `limit` bytes, all of it within `timeout_s`
    (a client that stalls mid-body would otherwise hold its connection and its task)."""
    length = _content_length(scope["headers"])
    if length is not None and length > limit:
        raise _too_large(limit)
    raw = await _read_body(receive, limit, timeout_s)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequestError(
            "We could not parse the JSON body of your request. The body must be a JSON object."
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    # Each level takes two bytes, so a short body cannot be too deep: small requests skip
    # the check, which costs one orjson.dumps (~40 us for an 80 KB agent request, about a
    # tenth of walking the parsed value in Python).
    if len(raw) > 2 * MAX_NESTING and not _writable(data):
        raise InvalidRequestError(
            f"The request body is nested more than {MAX_NESTING} levels deep."
        )
    return data


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            if not value.isdigit():
                return None  # (uvicorn refuses a malformed length before we see it)
            # int() refuses more than 4,300 digits; any length of 19 digits is too large.
            return int(value) if len(value) < 19 else 1 << 63
    return None


async def _read_body(receive: Receive, limit: int, timeout_s: float | None) -> bytes:
    """The ASGI body messages joined, as starlette's `Request.stream` reads them, without
    its async generator (a frame and two more awaits per message, on every request)."""
    chunks: list[bytes] = []
    size = 0
    try:
        with coarse_timeout(timeout_s):  # (`asyncio.timeout` costs a loop timer)
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect()
                chunk = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(limit)
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise RequestTimeoutError(
            f"The request body did not arrive within {timeout_s:g} s."
        ) from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)  # most bodies: one chunk


def _writable(data: dict[str, Any]) -> bool:
    """Whether orjson can write `data` back out: for what orjson parsed (str keys, finite
    numbers, valid strings) the one way to fail is nesting past its recursion limit."""
    try:
        orjson.dumps(data)
    except orjson.JSONEncodeError:
        return False
    return True


def validate(model: type[M], data: dict[str, Any]) -> M:
    """Validate into an OpenAI request model; errors become a 400 naming the parameter."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        param, message = validation_error_param(exc)
        raise InvalidRequestError(message, param=param) from None


def json_response(
    data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    try:
        body = orjson.dumps(data)
    except orjson.JSONEncodeError:  # a lone surrogate from the model: escape it, go on
        body = json.dumps(data, separators=(",", ":")).encode("ascii")
    return _JSONResponse(body, status, headers)


class _JSONResponse(Response):
    """starlette's `Response` for a JSON body, its headers built in one pass.

    `Response.__init__` renders the content, lower-cases and scans the given headers for a
    length and a type, then appends both: a few microseconds on every answer, for a body
    that is bytes already and headers (ours) that never hold either. The headers come out
    in the same order, and anything else (an odd status, a caller's own length or type)
    takes starlette's path.
    """

    media_type = "application/json"

    def __init__(self, body: bytes, status: int, headers: Mapping[str, str] | None) -> None:
        raw = (
            [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
            if headers
            else []
        )
        if status < 200 or status in (204, 304) or any(k in _OWN_HEADERS for k, _ in raw):
            super().__init__(body, status, headers)
            return
        self.status_code = status
        self.background = None
        self.body = body
        raw.append((b"content-length", str(len(body)).encode("latin-1")))
        raw.append((b"content-type", b"application/json"))
        self.raw_headers = raw


_OWN_HEADERS = frozenset({b"content-length", b"content-type"})
