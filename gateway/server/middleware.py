"""Pure-ASGI middleware of starlette's stack: request bookkeeping (outer), authentication.

The surfaces' routes never reach this stack: `gateway.server.dispatch.GatewayApp` hands
them to their endpoint in front of it, and the endpoint keeps their request id, in-flight
gauge, authentication and errors itself (`gateway.pipeline.handler`). For every other
route the order is fixed in `app.create_app`:

    GatewayApp's front door (CORSMiddleware, when configured) -> ServerErrorMiddleware
    -> RequestMiddleware -> AuthMiddleware -> router

`RequestMiddleware` assigns the request id (echoed in `x-request-id`), snapshots the
running config, keeps `gateway_inflight_requests`, and turns any `GatewayError` (or
unexpected exception) into an OpenAI-shaped error. `AuthMiddleware` decides who is calling
for the routes that need a key (models, usage, admin). Both are plain ASGI (not
`BaseHTTPMiddleware`) so that responses pass through untouched, as in starlette's own gzip
middleware.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import GatewayError, InternalError
from gateway.ids import new_id
from gateway.pipeline.authenticate import authenticate
from gateway.server.headers import request_id_from

if TYPE_CHECKING:
    from gateway.pipeline.runtime import Gateway

__all__ = ["AuthMiddleware", "RequestMiddleware", "send_error"]

logger = logging.getLogger("gateway")


def _error_body(error: GatewayError) -> bytes:
    return json.dumps(error.to_openai(), separators=(",", ":")).encode()


async def send_error(send: Send, error: GatewayError) -> None:
    body = _error_body(error)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in error.headers.items()),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestMiddleware:
    def __init__(self, app: ASGIApp, *, route_labels: frozenset[str]) -> None:
        self.app = app
        # The `route` label of `gateway_inflight_requests`: one of these, else "other".
        # Never the raw path: every `/v1/models/<id>` or scanned `/v1/...` path would be a
        # series kept forever.
        self.route_labels = route_labels

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Created by the lifespan, after this middleware was built: look it up per request.
        gateway: Gateway = scope["app"].state.gateway
        started = time.perf_counter()
        request_id = request_id_from(scope["headers"]) or new_id()
        path: str = scope["path"]
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["started"] = started
        state["runtime"] = gateway.runtime  # one config snapshot for the whole request

        request_id_header = (b"x-request-id", request_id.encode("latin-1"))
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                message["headers"] = [*message.get("headers", ()), request_id_header]
            await send(message)

        inflight = gateway.metrics.inflight_for(path if path in self.route_labels else "other")
        inflight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        except GatewayError as error:
            if not response_started:
                await send_error(send_wrapper, error)
        except ClientDisconnect:
            pass  # the client hung up while sending its body: nobody to answer
        except Exception:
            logger.exception("unhandled error", extra={"request_id": request_id})
            if not response_started:
                await send_error(
                    send_wrapper, InternalError("The gateway failed to handle the request.")
                )
        finally:
            inflight.dec()


class AuthMiddleware:
    """Puts the caller's `Principal` in `scope["state"]["principal"]`, or answers 401.

    Skips the public paths (probes, metrics). The surfaces never come here: they
    authenticate in their own pipeline and answer in their own error shape.
    """

    def __init__(self, app: ASGIApp, *, public_paths: Callable[[], frozenset[str]]) -> None:
        self.app = app
        self.public_paths = public_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public_paths():
            await self.app(scope, receive, send)
            return
        state = scope["state"]
        state["principal"] = authenticate(state["runtime"].keys, scope["headers"])
        await self.app(scope, receive, send)
