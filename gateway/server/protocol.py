"""uvicorn's httptools protocol with a deadline for a client's request headers.

uvicorn times out an idle keep-alive connection, but not one that has started a request
and then stalls in its headers (or a fresh connection that sends nothing): each such
connection holds a socket and a file descriptor for as long as the client likes, and a
few hundred of them are a cheap denial of service (slowloris). Here a timer is armed when
a connection opens and whenever a request has begun but its headers are not complete at
the end of the data received, and disarmed when the headers are complete; if it fires
first, the connection is closed. (Most requests arrive with all their headers in one
read: they never need the timer, which would cost a timer made and cancelled per
request.) The deadline is `server.header_timeout_s`, read from the application's lifespan
state (`create_app` puts it there), so each worker of `serve --workers N` uses its own
config.

The body's deadline (`server.body_timeout_s`) is enforced where the body is read
(`gateway.server.bodies.read_json`), with a 408 the client can see.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HEADER_TIMEOUT_STATE", "PROTOCOL", "GatewayHttpProtocol"]

# The lifespan state key holding the header deadline in seconds.
HEADER_TIMEOUT_STATE = "gateway.header_timeout_s"

# What `serve` passes as uvicorn's `http` option (an import string, so workers find it).
PROTOCOL = "gateway.server.protocol:GatewayHttpProtocol"


class GatewayHttpProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._in_headers = False  # a request has begun and its headers are not complete

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_headers and self._header_timer is None:
            self._arm_header_timer()  # the headers go on in a later read: from now on

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        timeout_s = self.app_state.get(HEADER_TIMEOUT_STATE)
        if timeout_s:
            self._header_timer = self.loop.call_later(timeout_s, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()
