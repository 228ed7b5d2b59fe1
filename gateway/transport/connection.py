"""One keep-alive HTTP/1.1 connection to Bedrock.

A `Connection` is an asyncio protocol with an `httptools` response parser: bytes go in
through `data_received`, the parser calls back with the status, the headers and pieces
of the body, and a `Response` buffers those pieces for whoever reads it. The connection
goes back to its pool the moment the parser sees the end of a response whose server
allows keep-alive; the body already read stays with the `Response`, so a slow reader of
a stream never holds a connection it no longer needs.

The read timeout is an idle timer, as aiohttp's `sock_read` is: it fires when nothing
arrived for `read_timeout` seconds while a response was awaited, not after a total time,
because a ConverseStream may last minutes. Only one timer is armed per response and it
is re-armed lazily, so the cost per chunk is one clock read.

Errors are botocore's own exceptions (`ConnectionClosedError`, `ReadTimeoutError`,
`ResponseStreamingError`), the ones botocore's retry handler and `gateway.bedrock.client` already
know, so nothing above the transport can tell it apart from aiobotocore's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import httptools
from botocore.exceptions import (
    ConnectionClosedError,
    HTTPClientError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from gateway.transport.response import Response

__all__ = ["Connection"]

# A reader that falls this far behind makes the connection stop reading from the socket
# until it catches up (TCP then slows Bedrock down); an event stream never gets near it.
_PAUSE_ABOVE = 1 << 20


class _UnexpectedData(Exception):
    """The server sent bytes that are not part of the answer we are waiting for."""


class Connection(asyncio.Protocol):
    """An HTTP/1.1 client connection: one request at a time, then back to the pool."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, on_reusable: Callable[[Connection], None]
    ) -> None:
        self.loop = loop
        self._on_reusable = on_reusable
        # Set by the pool when it adopts the connection: then losing it frees a slot.
        self.on_lost: Callable[[Connection], None] | None = None
        self._transport: asyncio.Transport | None = None
        self._parser: Any = None
        self._response: Response | None = None
        self._headers_received: asyncio.Future[None] | None = None
        self._header_list: list[tuple[bytes, bytes]] = []
        self._reading_paused = False
        self._read_timeout: float | None = None
        self._last_activity = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._until_eof = False
        self.closed = False
        self.idle_since = 0.0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports do not derive from asyncio.Transport; they quack like one.)
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._response is None:
            # Bytes nobody asked for: the stream is out of step, never reuse it.
            self.abort()
            return
        self._last_activity = self.loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionClosedError(endpoint_url=self._url(), error=exc))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        response = self._response
        if response is not None:
            if response.status == 0:  # no answer yet
                self._fail(ConnectionClosedError(endpoint_url=self._url(), error=exc))
            elif self._until_eof:
                self._response = None
                response._finish()
            else:
                self._fail(
                    ResponseStreamingError(error=exc or "the connection closed mid-response")
                )
        if self.on_lost is not None:
            self.on_lost(self)

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._response is None:
            raise _UnexpectedData
        self._header_list.append((name, value))

    def on_headers_complete(self) -> None:
        response = self._response
        if response is None:
            raise _UnexpectedData
        status = self._parser.get_status_code()
        if status < 200:
            # An interim answer (100 Continue, 103 Early Hints): the real one follows.
            self._header_list = []
            return
        response.status = status
        headers: dict[str, str] = {}
        for raw_name, raw_value in self._header_list:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        response.headers = headers
        # A response with neither a length nor chunks ends when the server closes.
        self._until_eof = (
            "content-length" not in headers
            and "transfer-encoding" not in headers
            and status >= 200
            and status not in (204, 304)
        )
        waiter = self._headers_received
        self._headers_received = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_body(self, body: bytes) -> None:
        response = self._response
        if response is None:
            raise _UnexpectedData
        response._feed(body)
        if response._buffered > _PAUSE_ABOVE and not self._reading_paused and not response.greedy:
            self._reading_paused = True
            assert self._transport is not None
            self._transport.pause_reading()

    def on_message_complete(self) -> None:
        response = self._response
        if response is None:
            raise _UnexpectedData
        if response.status == 0:
            return  # the end of an interim answer
        self._response = None
        self._cancel_timer()
        if self._reading_paused:  # the rest of the body is the response's, not ours
            self.resume_reading()
        reusable = self._parser.should_keep_alive()
        response._finish()
        if reusable:
            self.idle_since = self.loop.time()
            self._on_reusable(self)
        elif self._transport is not None:
            self._transport.close()  # the server asked to close: a FIN, not a reset

    # What the session calls.

    async def exchange(
        self, response: Response, head: bytes, body: bytes, read_timeout: float | None
    ) -> None:
        """Send one request and wait for the status and headers of `response`."""
        transport = self._transport
        if transport is None or self.closed or transport.is_closing():
            error = ConnectionClosedError(endpoint_url=response.url)
            response._fail(error)
            raise error
        self._response = response
        self._parser = httptools.HttpResponseParser(self)
        self._header_list = []
        self._until_eof = False
        self._headers_received = waiter = self.loop.create_future()
        self._read_timeout = read_timeout
        self._last_activity = self.loop.time()
        if read_timeout is not None:
            self._timer = self.loop.call_at(self._last_activity + read_timeout, self._on_timer)
        # Written once and not drained: the answer is awaited anyway, and the transport
        # buffers what the socket cannot take yet (a large image) without our help.
        if len(body) <= 65536:
            transport.write(head + body)
        else:
            transport.writelines((head, body))
        # No `finally` that clears `_headers_received`: by the time this task resumes the
        # connection may be back in the pool and serving the next request, whose waiter
        # that would be. The callbacks that settle a waiter clear it.
        await waiter

    def resume_reading(self) -> None:
        if self._reading_paused and self._transport is not None and not self.closed:
            self._reading_paused = False
            self._last_activity = self.loop.time()
            self._transport.resume_reading()

    def set_socket_options(self, options: list[tuple[int, int, int]]) -> None:
        if not options or self._transport is None:
            return
        sock = self._transport.get_extra_info("socket")
        if sock is not None:
            for level, option, value in options:
                sock.setsockopt(level, option, value)

    def abort(self) -> None:
        """Drop the connection now; what was in flight fails, the pool forgets it."""
        if self._transport is not None and not self.closed:
            self._transport.abort()

    # Internals

    def _url(self) -> str:
        return self._response.url if self._response is not None else ""

    def _fail(self, error: HTTPClientError) -> None:
        response = self._response
        self._response = None
        self._cancel_timer()
        waiter = self._headers_received
        self._headers_received = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        if response is not None:
            response._fail(error)

    def _on_timer(self) -> None:
        self._timer = None
        if self._response is None or self._read_timeout is None:
            return
        now = self.loop.time()
        due = self._last_activity + self._read_timeout
        if self._reading_paused:
            # We stopped reading ourselves: the silence is the reader's, not Bedrock's.
            self._timer = self.loop.call_at(now + self._read_timeout, self._on_timer)
            return
        if now < due:  # data came in since the timer was set
            self._timer = self.loop.call_at(due, self._on_timer)
            return
        self._fail(ReadTimeoutError(endpoint_url=self._url()))
        self.abort()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
