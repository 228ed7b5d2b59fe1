"""Pure-ASGI middleware: request bookkeeping (outer) and authentication (inner).

Order matters and is fixed in `app.create_app`:

    RequestMiddleware -> AuthMiddleware -> router

`RequestMiddleware` sees every request first and last: it assigns the request id, creates
the usage record, turns any `GatewayError` (or unexpected exception) into an OpenAI-shaped
error, and when the response is over writes the record exactly once, counts metrics and
logs one access line. `AuthMiddleware` only decides who is calling; because it sits inside,
a 401 is still recorded and counted. Both are plain ASGI (not `BaseHTTPMiddleware`) so
that streamed responses pass through untouched, as in starlette's own gzip middleware.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import (
    AuthenticationError,
    GatewayError,
    InternalError,
    OverloadedError,
    UpstreamError,
)
from gateway.ids import new_id
from gateway.keys.index import key_from_headers
from gateway.logs import ACCESS_LOGGER
from gateway.usage.record import UsageRecord

if TYPE_CHECKING:
    from gateway.pipeline.runtime import Gateway

__all__ = ["AuthMiddleware", "RequestMiddleware", "send_error"]

logger = logging.getLogger("gateway")
access_logger = logging.getLogger(ACCESS_LOGGER)

# Routes that call a model: each request gets a usage record, success or failure. Listing
# models or reading usage costs nothing, so it stays out of the ledger.
BILLABLE_ROUTES = frozenset({"/v1/chat/completions", "/v1/embeddings", "/v1/responses"})

# The `route` label of `gateway_inflight_requests`: one of these, else "other". Never the raw
# path: every `/v1/models/<id>` or scanned `/v1/...` path would be a series kept forever.
_ROUTE_LABELS = BILLABLE_ROUTES | {"/v1/models", "/v1/usage"}

# The status recorded for a client that left before anything was sent back (nginx's
# "client closed request"): nothing went wrong on our side, so not a 5xx, and not 0.
CLIENT_CLOSED_REQUEST = 499


def _error_body(error: GatewayError) -> bytes:
    return json.dumps(error.to_openai(), separators=(",", ":")).encode()


async def send_error(
    send: Send, error: GatewayError, extra_headers: list[tuple[bytes, bytes]]
) -> None:
    body = _error_body(error)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra_headers,
        *((k.encode(), v.encode()) for k, v in error.headers.items()),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def error_type_of(error: GatewayError) -> str:
    """The usage record's `error_type`: Bedrock's exception name, else our code or type."""
    if isinstance(error, UpstreamError):
        return error.bedrock_error
    return error.code or error.type


class RequestMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Created by the lifespan, after this middleware was built: look it up per request.
        gateway: Gateway = scope["app"].state.gateway
        started = time.perf_counter()
        request_id = _header(scope, b"x-request-id") or new_id()
        path: str = scope["path"]
        billable = path in BILLABLE_ROUTES
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["started"] = started
        state["runtime"] = gateway.runtime  # one config snapshot for the whole request
        record: UsageRecord | None = None
        if billable:
            record = UsageRecord(
                id=new_id(),
                ts=datetime.now(UTC),
                request_id=request_id,
                route=path,
            )
            state["usage"] = record

        request_id_header = (b"x-request-id", request_id.encode("latin-1"))
        status = 0
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), request_id_header]
            await send(message)

        route_label = path if path in _ROUTE_LABELS else "other"
        inflight = gateway.metrics.inflight_for(route_label)
        inflight.inc()
        try:
            if billable and gateway.inflight_billable >= gateway.max_concurrent:
                raise OverloadedError(
                    "The gateway is at its concurrent request limit; retry shortly."
                )
            gateway.inflight_billable += billable
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                gateway.inflight_billable -= billable
        except GatewayError as error:
            if record is not None:
                record.error_type = error_type_of(error)
            if not response_started:
                await send_error(send_wrapper, error, [])
        except ClientDisconnect:
            # The client hung up while its body was still being read (starlette raises this
            # from `request.stream()`): there is nobody to answer and nothing to log.
            if record is not None:
                record.error_type = "client_disconnected"
            if not response_started:
                status = CLIENT_CLOSED_REQUEST
        except Exception:
            logger.exception("unhandled error", extra={"request_id": request_id})
            if record is not None:
                record.error_type = "internal_error"
            if not response_started:
                await send_error(
                    send_wrapper, InternalError("The gateway failed to handle the request."), []
                )
        finally:
            inflight.dec()
            if record is not None:
                record.status = status
                record.latency_ms = round((time.perf_counter() - started) * 1000, 3)
                gateway.finish(record)


class AuthMiddleware:
    """Puts the caller's `Principal` in `scope["state"]["principal"]`, or answers 401."""

    def __init__(self, app: ASGIApp, *, public_paths: Callable[[], frozenset[str]]) -> None:
        self.app = app
        self.public_paths = public_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public_paths():
            await self.app(scope, receive, send)
            return
        state = scope["state"]
        key = key_from_headers(scope["headers"])
        principal = state["runtime"].keys.lookup(key) if key else None
        if principal is None:
            message = (
                "Missing API key: send it as 'Authorization: Bearer <key>'."
                if key is None
                else "Incorrect API key provided."
            )
            raise AuthenticationError(message)
        state["principal"] = principal
        record: UsageRecord | None = state.get("usage")
        if record is not None:
            record.key_id = principal.key_id
            record.team = principal.team
            record.user = principal.user
        await self.app(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            # A caller's id is echoed back and logged: keep it short and printable.
            if 0 < len(text) <= 128 and text.isprintable():
                return text
            return None
    return None


def access_fields(record: UsageRecord) -> dict[str, Any]:
    return {
        "request_id": record.request_id,
        "route": record.route,
        "key_id": record.key_id,
        "team": record.team,
        "model": record.model,
        "bedrock_model_id": record.bedrock_model_id,
        "status": record.status,
        "stream": record.stream,
        "latency_ms": record.latency_ms,
        "ttft_ms": record.ttft_ms,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "cache_read_tokens": record.cache_read_tokens,
        "cache_write_tokens": record.cache_write_tokens,
        "estimated": record.estimated,
        "error_type": record.error_type,
    }
