"""`GatewayApp`: starlette, with the surfaces' routes answered in front of its stack.

A request to a surface's route (`/v1/chat/completions`, ...) goes from uvicorn straight to
its endpoint (`gateway.pipeline.handler.SurfaceEndpoint`), past everything starlette would
run first: `Starlette.__call__`, `ServerErrorMiddleware`, our `RequestMiddleware` and its
send wrapper, `ExceptionMiddleware`, the `Router` (a regex match against every route), the
route's method check and `request_response` with its own exception handling. Profiles put
those layers at about a tenth of the app's own CPU for a short chat completion, and none of
them decides anything for these routes:

- the endpoint answers every method itself (a wrong one is a 405 in the surface's error
  shape, counted in the metrics);
- it keeps the request id and the in-flight gauge itself, and catches every exception
  (`ServerErrorMiddleware` would have nothing left to catch);
- it authenticates in its own pipeline, in its own error shape.

Only the edge middleware (CORS, when origins are configured) still applies to them: it
wraps the front door, so a preflight or an actual request from a browser gets the same
headers on every route.

Everything else (lifespan, websockets, the models, usage, admin and probe routes, unknown
paths) goes on to starlette's stack as before: 404s and path parameters stay starlette's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["DirectRoutes", "GatewayApp"]


class DirectRoutes:
    """Calls `routes[path]` for a request to one of `routes`; anything else goes to `app`."""

    def __init__(self, app: ASGIApp, *, routes: Mapping[str, ASGIApp]) -> None:
        self.app = app
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.routes.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)


class GatewayApp(Starlette):
    """A `Starlette` whose `direct` routes are dispatched before its middleware stack.

    `edge` wraps that front door (CORS); it must not be in `middleware` as well.
    """

    def __init__(
        self,
        *,
        direct: Mapping[str, ASGIApp],
        edge: Callable[[ASGIApp], ASGIApp] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        front: ASGIApp = DirectRoutes(self._stack, routes=direct)
        self._front = edge(front) if edge is not None else front

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self  # what `Starlette.__call__` does first; the endpoints read it
        await self._front(scope, receive, send)

    async def _stack(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)
