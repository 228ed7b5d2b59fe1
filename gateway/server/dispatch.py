"""Direct dispatch for the surfaces' routes: they skip starlette's router stack.

Between our middleware and a handler, starlette runs its `ExceptionMiddleware`, the
`Router` (a regex match against every route), the route's method check and the
`request_response` wrapper with its own exception handling: about a tenth of the app's
own CPU for a chat completion, in profiles, for decisions already known from one dict
lookup. A surface's endpoint (`gateway.pipeline.handler.SurfaceEndpoint`) answers every
method itself (a wrong one is a 405 in the surface's error shape, counted in the metrics),
so nothing those layers do applies to these routes.

Everything else (the models, usage and probe routes, unknown paths) goes on to the
`Router` as before: 404s and path parameters stay starlette's.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["DirectRoutes"]


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
