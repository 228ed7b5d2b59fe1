"""The response a `Connection` is reading: what aiobotocore gets as the `raw` response."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from botocore.exceptions import ResponseStreamingError

if TYPE_CHECKING:
    from gateway.transport.connection import Connection

__all__ = ["RESUME_BELOW", "Response"]

# A reader that falls behind by more than the connection's pause threshold makes it stop
# reading from the socket; it reads again once the reader is down to this.
RESUME_BELOW = 1 << 18


class Response:
    """The status, headers and body of one response: aiobotocore's `raw` response.

    aiobotocore reads it three ways, and each is here: `await read()` for a whole body,
    `content.iter_chunks()` for an event stream (ConverseStream), and `content.read(n)`
    inside a `StreamingBody` (InvokeModel). `close()` before the end drops the connection,
    since the rest of the answer would have to be read before it could be reused.
    """

    __slots__ = (
        "_buffered",
        "_chunks",
        "_connection",
        "_error",
        "_waiter",
        "complete",
        "greedy",
        "headers",
        "status",
        "url",
    )

    def __init__(self, connection: Connection | None, url: str) -> None:
        self._connection = connection  # None once the response is complete or dropped
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.complete = False
        # Set while a reader waits for the whole body: then the connection never pauses
        # (it would wait for a reader who waits for the end: a deadlock).
        self.greedy = False
        self.status = 0
        self.headers: dict[str, str] = {}
        self.url = url

    # What the connection reports.

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        self._wake()

    def _finish(self) -> None:
        self.complete = True
        self._connection = None
        self._wake()

    def _fail(self, error: BaseException) -> None:
        if self.complete or self._error is not None:
            return
        self._error = error
        self._connection = None
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        connection = self._connection
        if connection is None:  # pragma: no cover - callers check complete/error first
            return
        self._waiter = waiter = connection.loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    # What aiobotocore (and our code) calls.

    @property
    def content(self) -> Response:
        """aiohttp's `ClientResponse.content`: the body reader is the response itself."""
        return self

    def at_eof(self) -> bool:
        return self.complete and not self._chunks

    async def read(self, amt: int = -1) -> bytes:
        """The whole body (`amt` < 0), or up to `amt` bytes of it; b"" at the end."""
        while True:
            if self._chunks and (amt >= 0 or self.complete):
                return self._take(amt)
            if self.complete:
                return b""
            if self._error is not None:
                raise self._error
            if amt < 0 and not self.greedy:
                self.greedy = True
                if self._connection is not None:
                    self._connection.resume_reading()
            await self._wait()

    async def iter_chunks(self) -> AsyncIterator[tuple[bytes, bool]]:
        """Body pieces as they arrive, as `(data, False)` pairs like aiohttp's."""
        while True:
            if self._chunks:
                yield self._take(-1), False
                continue
            if self.complete:
                return
            if self._error is not None:
                raise self._error
            await self._wait()

    def _take(self, amt: int) -> bytes:
        chunks = self._chunks
        if amt < 0 or amt >= self._buffered:
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
        else:
            parts = []
            while amt:
                chunk = chunks[0]
                if len(chunk) <= amt:
                    parts.append(chunks.popleft())
                    amt -= len(chunk)
                else:
                    parts.append(chunk[:amt])
                    chunks[0] = chunk[amt:]
                    amt = 0
            data = b"".join(parts)
        self._buffered -= len(data)
        connection = self._connection
        if connection is not None and self._buffered < RESUME_BELOW:
            connection.resume_reading()
        return data

    def close(self) -> None:
        """Stop reading: drops the connection unless the whole response is already in."""
        connection = self._connection
        if connection is not None:
            self._fail(ResponseStreamingError(error="the response was closed before its end"))
            connection.abort()
        self._chunks.clear()
        self._buffered = 0

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
