"""Request-body and response helpers shared by the handlers.

The body limit is enforced while reading (and from Content-Length before reading), so an
oversized upload is refused without being buffered whole.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import InvalidRequestError, PayloadTooLargeError, RequestTimeoutError
from gateway.schemas.openai import validation_error_param

__all__ = ["json_response", "read_json", "validate"]

M = TypeVar("M", bound=BaseModel)

# orjson parses up to 1024 levels, but botocore serializes tool schemas and
# additional_model_request_fields with the standard library, whose recursion runs out near
# 950 levels (fewer inside a server's call stack): a RecursionError, a 500. No real
# request nests more than a few dozen levels.
MAX_NESTING = 128


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"Request body exceeds the gateway's limit of {limit} bytes.")


async def read_json(
    request: Request, limit: int, *, timeout_s: float | None = None
) -> dict[str, Any]:
    """The body as a JSON object, at most `limit` bytes, all of it within `timeout_s`
    (a client that stalls mid-body would otherwise hold its connection and its task)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeoutError(
            f"The request body did not arrive within {timeout_s:g} s."
        ) from None
    raw = b"".join(chunks)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequestError(
            "We could not parse the JSON body of your request. The body must be a JSON object."
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    # No JSON nests deeper than it has opening brackets (those in strings count too, so
    # this only errs towards walking): almost every request skips the walk.
    if raw.count(b"{") + raw.count(b"[") > MAX_NESTING and _deeper_than(data, MAX_NESTING):
        raise InvalidRequestError(
            f"The request body is nested more than {MAX_NESTING} levels deep."
        )
    return data


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether JSON `value` nests more than `limit` containers deep (no recursion).

    Level by level, each level's containers gathered by one list comprehension per
    container: agent-sized requests (Claude Code, Codex: ~80 KB, hundreds of containers,
    thousands of strings) all take this walk, and a tuple per visited node cost about twice
    as much.
    """
    level: list[Any] = [value]
    depth = 1
    while level:
        if depth > limit:
            return True
        deeper: list[Any] = []
        for node in level:
            children = node.values() if type(node) is dict else node
            deeper += [child for child in children if type(child) is dict or type(child) is list]
        level = deeper
        depth += 1
    return False


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
    return Response(body, status_code=status, headers=headers, media_type="application/json")
