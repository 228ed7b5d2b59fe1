"""`SurfaceEndpoint`: the one place a request's stages run, in order, for every surface.

    authenticate -> read and parse the body -> resolve the model -> prepare (pure checks)
    -> admit (capacity, limits) -> respond (Bedrock through `Upstream`, translate back)
    -> finish (price, record, charge, metrics, access log)

The stages are plain calls in one function, not hooks a surface may or may not call: a
surface plugs in its `parse`, `prepare` and `respond`, and can neither reach Bedrock
before admission (it gets the `Upstream` only then) nor skip the finish (it runs in a
`finally`). Errors are answered in the surface's own shape, with the right status, as long
as nothing has been sent yet; after that a streaming surface reports them in the stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from starlette.requests import ClientDisconnect, Request
from starlette.types import Message, Receive, Scope, Send

from gateway.errors import GatewayError, InternalError, MethodNotAllowedError, UpstreamError
from gateway.ids import new_id
from gateway.pipeline.admit import Admitted, admit, resolve_model
from gateway.pipeline.authenticate import authenticate
from gateway.pipeline.context import RequestContext
from gateway.pipeline.finish import finish
from gateway.pipeline.runtime import Gateway
from gateway.pipeline.surface import Surface
from gateway.pipeline.upstream import Upstream
from gateway.server.bodies import read_json

__all__ = ["CLIENT_CLOSED_REQUEST", "SurfaceEndpoint", "error_type_of"]

logger = logging.getLogger("gateway")

# The status recorded for a client that left before anything was sent back (nginx's
# "client closed request"): nothing went wrong on our side, so not a 5xx, and not 0.
CLIENT_CLOSED_REQUEST = 499


def error_type_of(error: GatewayError) -> str:
    """The usage record's `error_type`: Bedrock's exception name, else our code or type."""
    if isinstance(error, UpstreamError):
        return error.bedrock_error
    return error.code or error.type


class SurfaceEndpoint:
    """The ASGI app of one surface's `POST` route."""

    def __init__(self, surface: Surface) -> None:
        self.surface = surface

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        surface = self.surface
        gateway: Gateway = scope["app"].state.gateway
        runtime = gateway.runtime  # one config snapshot for the whole request
        ctx = RequestContext(
            id=new_id(),
            request_id=scope["state"]["request_id"],
            route=surface.route,
            arrived=datetime.now(UTC),
            started=scope["state"]["started"],
            runtime=runtime,
            billable=surface.billable,
            headers=scope["headers"],
        )
        response_started = False
        write_timeout_s = runtime.config.server.write_timeout_s

        async def send_wrapper(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                ctx.status = message["status"]
                await send(message)
                return
            # uvicorn's send waits while the socket's buffer is full: a client that stops
            # reading would hold the request (and its Bedrock stream) for ever.
            try:
                async with asyncio.timeout(write_timeout_s):
                    await send(message)
            except TimeoutError:
                ctx.error_type = "client_write_timeout"
                raise ClientDisconnect() from None

        slot: Admitted | None = None
        try:
            if scope["method"] != "POST":
                raise MethodNotAllowedError(
                    f"{surface.route} takes POST, not {scope['method']}.", allow="POST"
                )
            ctx.principal = authenticate(runtime.keys, scope["headers"])
            server = runtime.config.server
            body = await read_json(
                Request(scope, receive), server.max_body_bytes, timeout_s=server.body_timeout_s
            )
            parsed = surface.parse(body, ctx)
            ctx.stream = parsed.stream
            ctx.end_user = parsed.end_user
            if runtime.config.logging.log_prompts:
                ctx.prompt = parsed.prompt
            ctx.model = resolve_model(runtime, ctx.principal, parsed.model, kind=surface.model_kind)
            prepared = surface.prepare(parsed, ctx.model, ctx)
            slot = await admit(gateway, ctx)
            response = await surface.respond(prepared, Upstream(gateway, ctx, receive), ctx)
            await response(scope, receive, send_wrapper)
        except GatewayError as error:
            ctx.error_type = error_type_of(error)
            if not response_started:
                await _send_error(
                    send_wrapper, error, surface.error_body(error), surface.error_status(error)
                )
        except ClientDisconnect:
            # The client hung up (while sending its body, or while we waited for Bedrock):
            # there is nobody to answer.
            if ctx.error_type is None:
                ctx.error_type = "client_disconnected"
            if not response_started:
                ctx.status = CLIENT_CLOSED_REQUEST
        except Exception:
            logger.exception("unhandled error", extra={"request_id": ctx.request_id})
            ctx.error_type = "internal_error"
            if not response_started:
                internal = InternalError("The gateway failed to handle the request.")
                await _send_error(
                    send_wrapper,
                    internal,
                    surface.error_body(internal),
                    surface.error_status(internal),
                )
        finally:
            if slot is not None:
                slot.release()
            ctx.latency_ms = round((time.perf_counter() - ctx.started) * 1000, 3)
            finish(gateway, ctx)


async def _send_error(send: Send, error: GatewayError, body: bytes, status: int) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in error.headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
