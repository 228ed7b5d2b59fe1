"""`GatewayApp`: the surfaces' routes in front of starlette's stack, the rest through it."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.server.dispatch import GatewayApp

Calls = list[str]


def _app(calls: Calls, *, edge: bool) -> GatewayApp:
    async def surface(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(f"surface app={scope['app'] is app}")
        await PlainTextResponse("surface")(scope, receive, send)

    async def listed(request: Any) -> PlainTextResponse:
        return PlainTextResponse("listed")

    class Stack:
        def __init__(self, inner: ASGIApp) -> None:
            self.inner = inner

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            calls.append(f"stack {scope['type']}")
            await self.inner(scope, receive, send)

    def outer(inner: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            calls.append("edge")
            await inner(scope, receive, send)

        return wrapped

    app = GatewayApp(
        direct={"/v1/surface": surface},
        edge=outer if edge else None,
        routes=[Route("/v1/listed", listed, methods=["GET"])],
        middleware=[Middleware(Stack)],
    )
    return app


def _call(app: ASGIApp, path: str, method: str = "POST") -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [],
        "root_path": "",
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
    }
    asyncio.run(app(scope, receive, send))
    return sent


def test_a_surface_route_skips_starlettes_stack_and_sees_the_app() -> None:
    calls: Calls = []
    sent = _call(_app(calls, edge=False), "/v1/surface")
    assert calls == ["surface app=True"]
    assert sent[1]["body"] == b"surface"


def test_other_routes_and_unknown_paths_go_through_the_stack() -> None:
    calls: Calls = []
    app = _app(calls, edge=False)
    assert _call(app, "/v1/listed", "GET")[1]["body"] == b"listed"
    assert _call(app, "/v1/surface/more")[0]["status"] == 404
    assert calls == ["stack http", "stack http"]


def test_the_edge_wraps_both_doors() -> None:
    calls: Calls = []
    app = _app(calls, edge=True)
    _call(app, "/v1/surface")
    _call(app, "/v1/listed", "GET")
    assert calls == ["edge", "surface app=True", "edge", "stack http"]
