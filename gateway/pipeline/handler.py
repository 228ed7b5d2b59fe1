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
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from gateway.errors import GatewayError, InternalError, MethodNotAllowedError, UpstreamError
from gateway.ids import new_id, new_record_id
from gateway.pipeline.admit import Admitted, admit, resolve_model
from gateway.pipeline.authenticate import authenticate
from gateway.pipeline.context import RequestContext
from gateway.pipeline.finish import finish
from gateway.pipeline.runtime import Gateway
from gateway.pipeline.surface import Surface
from gateway.pipeline.upstream import Upstream
from gateway.server.bodies import read_json
from gateway.server.deadlines import Handle, deadlines
from gateway.server.headers import request_id_from
from gateway.usage.clean import validate_end_user

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
        started = time.perf_counter()
        surface = self.surface
        # Created by the lifespan, after this endpoint was built: looked up per request.
        gateway: Gateway = scope["app"].state.gateway
        runtime = gateway.runtime  # one config snapshot for the whole request
        ctx = RequestContext(
            id=new_record_id(),
            request_id=request_id_from(scope["headers"]) or new_id(),
            route=surface.route,
            arrived=datetime.now(UTC),
            started=started,
            runtime=runtime,
            billable=surface.billable,
            headers=scope["headers"],
        )
        request_id_header = (b"x-request-id", ctx.request_id.encode("latin-1"))
        response_started = False
        # uvicorn's send waits while the socket's buffer is full: a client that stops
        # reading would hold the request (and its Bedrock stream) for ever.
        bounded = _BoundedSend(send, runtime.config.server.write_timeout_s)

        async def send_wrapper(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                ctx.status = message["status"]
                message["headers"] = [*message.get("headers", ()), request_id_header]
                await send(message)
                return
            try:
                await bounded(message)
            except TimeoutError:
                ctx.error_type = "client_write_timeout"
                raise ClientDisconnect() from None

        slot: Admitted | None = None
        inflight = gateway.metrics.inflight_for(surface.route)
        inflight.inc()
        try:
            if scope["method"] != "POST":
                raise MethodNotAllowedError(
                    f"{surface.route} takes POST, not {scope['method']}.", allow="POST"
                )
            ctx.principal = authenticate(runtime.keys, scope["headers"])
            server = runtime.config.server
            body = await read_json(
                scope, receive, server.max_body_bytes, timeout_s=server.body_timeout_s
            )
            parsed = surface.parse(body, ctx)
            ctx.stream = parsed.stream
            # It reaches the ledger, the access log and CSV reports: refuse what they
            # cannot hold (control characters, more than 256 characters) with a 400.
            ctx.end_user = validate_end_user(parsed.end_user, param=parsed.end_user_param)
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
            bounded.close()
            if slot is not None:
                slot.release()
            inflight.dec()
            ctx.latency_ms = round((time.perf_counter() - started) * 1000, 3)
            finish(gateway, ctx)


class _BoundedSend:
    """`send`, each call failing with `TimeoutError` once it has waited `timeout_s`.

    `asyncio.timeout` around every send cost a timer per write (dozens per stream), though
    a send that does not find the socket's buffer full returns without waiting at all.
    Here one deadline (`gateway.server.deadlines`, no loop timer of its own) serves a whole
    response: set at its first send, it notes when the send in progress started (a clock
    read per send) and, when it fires, fails that send if it is overdue, or sets itself for
    that send's deadline; with no send in progress it lapses until the next.
    """

    __slots__ = (
        "_deadlines",
        "_expired",
        "_loop",
        "_send",
        "_started",
        "_task",
        "_timeout_s",
        "_timer",
    )

    def __init__(self, send: Send, timeout_s: float) -> None:
        self._send = send
        self._timeout_s = timeout_s
        self._deadlines = deadlines()
        self._loop = self._deadlines.loop
        self._timer: Handle | None = None
        self._started: float | None = None  # loop time the send in progress started
        self._task: asyncio.Task[Any] | None = None  # the task making it
        self._expired = False  # we cancelled that task, for being too slow

    async def __call__(self, message: Message) -> None:
        task = self._task = asyncio.current_task()
        started = self._started = self._loop.time()
        if self._timer is None:
            self._timer = self._deadlines.call_at(started + self._timeout_s, self._check)
        try:
            await self._send(message)
        except asyncio.CancelledError:
            if self._expired and task is not None and task.uncancel() == 0:
                raise TimeoutError from None
            raise  # cancelled by someone else (as well)
        finally:
            self._started = None
            self._expired = False

    def close(self) -> None:
        """The response is over: no deadline outlives it."""
        if self._timer is not None:
            self._deadlines.cancel(self._timer)
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        started, task = self._started, self._task
        if started is None or task is None:
            return  # no send waits: the next one sets the deadline again
        deadline = started + self._timeout_s
        if self._loop.time() < deadline:
            self._timer = self._deadlines.call_at(deadline, self._check)
        elif not task.cancelling():  # (a task already being cancelled is ending anyway)
            self._expired = True
            task.cancel()


async def _send_error(send: Send, error: GatewayError, body: bytes, status: int) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in error.headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
