"""A streamed response whose encoder turns each Bedrock event straight into bytes.

`SSEResponse` (gateway.server.streaming) is built around the OpenAI chunk dicts; the
Anthropic stream is a re-framing of bytes Bedrock already sent, so its encoder returns the
SSE bytes per event and this response only moves them: one producer task reads Bedrock
and encodes, the writer sends whatever is waiting in one write (a burst of events is one
syscall, a paced stream still goes out event by event), and a watcher notices the client
leaving and drops the upstream connection instead of reading it to the end.

After the first byte the status is spent: a Bedrock failure becomes the encoder's error
event. Whatever happened, `settle(disconnected)` runs once at the end so the usage record
gets Bedrock's counts or a flagged estimate.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from starlette.types import Receive, Scope, Send

from gateway.bedrock.client import BedrockError, BedrockStream
from gateway.server.streaming import wait_for_disconnect
from gateway.usage.record import UsageRecord

__all__ = ["ByteEncoder", "ByteStreamResponse"]

_QUEUE_ITEMS = 64
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class ByteEncoder(Protocol):
    output_chars: int

    def feed(self, event: Mapping[str, Any]) -> bytes: ...

    def flush(self) -> bytes:
        """What is still owed when the upstream stream ended (or b"")."""
        ...


class ByteStreamResponse:
    def __init__(
        self,
        upstream: BedrockStream,
        events: AsyncIterator[dict[str, Any]],
        encoder: ByteEncoder,
        *,
        prefetched: list[dict[str, Any]],
        record: UsageRecord,
        started: float,
        headers: Mapping[str, str],
        error_event: Callable[[BedrockError], bytes],
        settle: Callable[[bool], None],
    ) -> None:
        self._upstream = upstream
        self._events = events
        self._encoder = encoder
        self._prefetched = prefetched
        self._record = record
        self._started = started
        self._headers = [*_SSE_HEADERS, *((k.encode(), v.encode()) for k, v in headers.items())]
        self._error_event = error_event
        self._settle = settle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pump: asyncio.Future[None] | None = None
        watcher: asyncio.Future[None] | None = None
        disconnected = False
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self._headers})
            head = b"".join([self._encoder.feed(event) for event in self._prefetched])
            self._prefetched = []
            if head:
                await send({"type": "http.response.body", "body": head, "more_body": True})
                self._first_content()
            pump = asyncio.ensure_future(self._pump(send))
            watcher = asyncio.ensure_future(wait_for_disconnect(receive))
            await asyncio.wait((pump, watcher), return_when=asyncio.FIRST_COMPLETED)
            if not pump.done():
                disconnected = True
                pump.cancel()
            await asyncio.wait((pump,))
            if not pump.cancelled():
                pump.result()
        finally:
            if watcher is not None:
                watcher.cancel()
            if pump is not None and not pump.done():
                pump.cancel()
            with contextlib.suppress(Exception):
                await self._upstream.aclose()
            if disconnected and self._record.error_type is None:
                self._record.error_type = "client_disconnected"
            self._settle(disconnected)
            if watcher is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    async def _pump(self, send: Send) -> None:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(_QUEUE_ITEMS)
        producer = asyncio.ensure_future(self._produce(queue))
        try:
            while True:
                parts = [await queue.get()]
                while parts[-1] is not None and not queue.empty():
                    parts.append(queue.get_nowait())
                last = parts[-1] is None
                body = b"".join(part for part in parts if part)
                if body or last:
                    await send({"type": "http.response.body", "body": body, "more_body": not last})
                    self._first_content()
                if last:
                    return
        finally:
            if not producer.done():
                producer.cancel()
            await asyncio.wait((producer,))

    async def _produce(self, queue: asyncio.Queue[bytes | None]) -> None:
        encoder = self._encoder
        try:
            async for event in self._events:
                data = encoder.feed(event)
                if data:
                    await queue.put(data)
        except BedrockError as exc:
            self._record.error_type = exc.name
            self._record.extra["upstream_error"] = exc.name
            await queue.put(self._error_event(exc))
            await queue.put(None)
            return
        tail = encoder.flush()
        if tail:
            await queue.put(tail)
        await queue.put(None)

    def _first_content(self) -> None:
        if self._record.ttft_ms is None and self._encoder.output_chars:
            self._record.ttft_ms = round((time.perf_counter() - self._started) * 1000, 3)
