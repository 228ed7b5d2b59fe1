"""Direct dispatch for the hot routes: the billable POSTs skip starlette's router stack.

Between our middleware and a handler, starlette runs its `ExceptionMiddleware`, the
`Router` (a regex match against every route), the route's method check and the
`request_response` wrapper with its own exception handling: about a tenth of the app's
own CPU for a chat completion, in profiles, for decisions already known from one dict
lookup. Our handlers raise `GatewayError`s, which `RequestMiddleware` turns into OpenAI
errors either way, so nothing those layers do applies to these routes.

Everything else (the models, usage and probe routes, unknown paths, a wrong method on a
hot path) goes on to the `Router` as before: 404s, 405s and path parameters stay
starlette's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["DirectRoutes", "Endpoint"]

Endpoint = Callable[[Request], Awaitable[Response | ASGIApp]]


class DirectRoutes:
    """Calls `routes[path]` for a `POST` to one of `routes`; anything else goes to `app`."""

    def __init__(self, app: ASGIApp, *, routes: Mapping[str, Endpoint]) -> None:
        self.app = app
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.routes.get(scope["path"])
            if endpoint is not None:
                response = await endpoint(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
