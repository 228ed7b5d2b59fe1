"""The SSE response for `stream: true`: Bedrock events in, a surface's events out, as they come.

Every streaming surface shares it; what differs is its `StreamEncoder`, which turns each
Bedrock event into the bytes of zero or more SSE events (OpenAI chunks, Responses events,
Anthropic events) and says what usage Bedrock reported.

Why not starlette's `StreamingResponse`: this response must own the Bedrock stream, so that
it is closed on every path (finished, failed, client gone, server shutting down), and it
must settle the request's usage from what the encoder saw. uvicorn speaks ASGI 2.3,
where a send after the client left is silently dropped, so the client's departure is
noticed by a second task that waits for `http.disconnect` and stops the writer at once: the
upstream connection is dropped instead of read to the end.

Back-pressure comes for free: uvicorn's `send` waits while the socket's write buffer is
full, so a slow client slows our reads from Bedrock rather than piling chunks up in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from starlette.types import Receive, Scope, Send

from gateway.bedrock.client import BedrockError, BedrockStream
from gateway.server.scheduling import SliceLane

if TYPE_CHECKING:
    from gateway.pipeline.context import RequestContext

__all__ = ["SSEResponse", "StreamEncoder", "estimate_tokens", "wait_for_disconnect"]


class StreamEncoder(Protocol):
    """One per streamed request: a surface's translation of Bedrock events to SSE bytes.

    `feed` and the rest return ready-to-write bytes (b"" when an event sends nothing), so
    the hot path builds no object per event beyond the translator's own dicts.
    """

    @property
    def output_chars(self) -> int:
        """Characters of content sent so far: the first write with some is the TTFT."""
        ...

    @property
    def unknown_events(self) -> int:
        """Bedrock events of a type the encoder does not know (ignored, but logged)."""
        ...

    @property
    def guardrail_intervened(self) -> bool:
        """Bedrock said a guardrail intervened in this answer (for the record and metrics)."""
        ...

    def feed(self, event: dict[str, Any]) -> bytes: ...

    def close(self) -> bytes:
        """What is still owed when Bedrock's stream has ended (final events, `[DONE]`)."""
        ...

    def fail(self, error: BedrockError) -> bytes:
        """The error event(s) for a failure after the first byte."""
        ...

    def settle(self, ctx: RequestContext) -> bool:
        """What the stream said about itself into `ctx`: Bedrock's own token counts
        (`ctx.usage`), the served tier, an error it ended with. False when it carried no
        usage (the response then records an estimate)."""
        ...

    def estimated_output_tokens(self) -> int: ...

    def completion(self) -> Any:
        """The streamed answer for the access log (`logging.log_prompts`)."""
        ...


logger = logging.getLogger("gateway")

# At most this many encoded chunks pile up while a write waits for the client (about a
# screenful of text).
_QUEUE_CHUNKS = 64

# The longest a stream's producer runs before it lets the event loop serve others. One
# read from Bedrock can hold dozens of events, and parsing them all in one go kept every
# other request (new streams, in particular, waiting for their first token) queued behind
# it. After this much work the producer waits in the gateway's `SliceLane`, which lets one
# paused stream go per turn of the loop (`gateway.server.scheduling` says why one).
# Pausing does not cut the burst into small writes: the writer waits for its end.
# 16 concurrent streams of 50 chunks, first chunk p50: 82 ms never yielding, 27 ms with
# `sleep(0)` every 0.2 ms, 3-4 ms in the lane (6 ms with 0.5 ms slices).
_SLICE_S = 0.0002

# The most the writer holds back while a burst goes on (then it writes anyway).
_COALESCE_BYTES = 64 * 1024

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class SSEResponse:
    def __init__(
        self,
        upstream: BedrockStream,
        events: AsyncIterator[dict[str, Any]],
        encoder: StreamEncoder,
        *,
        prefetched: list[dict[str, Any]],
        lane: SliceLane,
        ctx: RequestContext,
        headers: Mapping[str, str],
        estimate_input_tokens: Callable[[], int],
    ) -> None:
        self._upstream = upstream
        self._events = events
        self._prefetched = prefetched
        self._lane = lane
        self._encoder = encoder
        self._ctx = ctx
        self._headers = [*_SSE_HEADERS, *((k.encode(), v.encode()) for k, v in headers.items())]
        self._estimate_input_tokens = estimate_input_tokens
        # Between the producer (Bedrock events in, bytes out) and the writer (bytes to the
        # client): a list and two futures, not an `asyncio.Queue`, whose put and get cost
        # a coroutine and a handful of calls per event while the writer takes everything
        # waiting at once anyway.
        self._parts: list[bytes] = []  # translated, not yet sent
        self._size = 0  # their bytes
        self._ended = False  # the producer is done: `_parts` holds the last of the body
        self._failure: Exception | None = None  # what the producer died of, unexpectedly
        # True while the producer yields the loop in the middle of a burst of events.
        self._bursting = False
        self._writer_waits: asyncio.Future[None] | None = None  # for parts, or the end
        # While a write waits for the client, at most `_QUEUE_CHUNKS` parts pile up behind
        # it: then the producer waits for the writer to take them.
        self._sending = False
        self._producer_waits: asyncio.Future[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # This task writes; one task produces, one watches for the client leaving and then
        # cancels this one (the shape of `asyncio.timeout`, as in `Upstream`): no third task
        # to write and no `asyncio.wait` race between them.
        writer = asyncio.current_task()
        assert writer is not None, "called outside a task"
        producer: asyncio.Task[None] | None = None
        watcher: asyncio.Task[None] | None = None
        writing = disconnected = client_left = False

        def on_watcher_done(watcher: asyncio.Task[None]) -> None:
            nonlocal client_left
            if watcher.cancelled():
                return
            watcher.exception()  # a failing receive() too means nobody is reading any more
            if writing:
                client_left = True
                writer.cancel()

        try:
            await send({"type": "http.response.start", "status": 200, "headers": self._headers})
            # The first content goes out from here, not from another task: a new task
            # starts a turn of the event loop later, and under load a turn is milliseconds.
            await self._send_prefetched(send)
            producer = asyncio.ensure_future(self._produce())
            watcher = asyncio.ensure_future(wait_for_disconnect(receive))
            watcher.add_done_callback(on_watcher_done)
            writing = True
            try:
                await self._write(send)
            except asyncio.CancelledError:
                if not client_left or writer.uncancel() > 0:
                    raise  # we are being cancelled ourselves (shutdown)
                disconnected = True
        finally:
            writing = False
            if watcher is not None:
                watcher.cancel()
            if producer is not None and not producer.done():
                producer.cancel()
                # Let it unwind before the stream is closed under it (its own cleanup is
                # synchronous, so this is prompt).
                await asyncio.wait((producer,))
            await self._close_upstream()
            self._settle(disconnected)
            if watcher is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    async def _send_prefetched(self, send: Send) -> None:
        """The events read before the response started (up to the first content), at once."""
        feed = self._encoder.feed
        head = b"".join([feed(event) for event in self._prefetched])
        self._prefetched = []
        if head:
            await send({"type": "http.response.body", "body": head, "more_body": True})
            self._first_content()

    async def _write(self, send: Send) -> None:
        """Send what the producer translated, everything that is waiting in one write.

        When Bedrock's events arrive together (a burst, or a fast model), one write per event
        was most of a stream's cost (a syscall each); when they arrive paced, each still goes
        out as soon as it is translated. While a write waits for a slow client, at most
        `_QUEUE_CHUNKS` pile up behind it, so the client slows the reads from Bedrock
        instead of filling memory.
        """
        loop = asyncio.get_running_loop()
        ctx = self._ctx
        while True:
            if not self._ended and (
                not self._parts or (self._bursting and self._size < _COALESCE_BYTES)
            ):
                # Nothing to send, or the producer only paused between events it already
                # holds: it wakes us again when it resumes, so send its burst at once.
                self._writer_waits = loop.create_future()
                await self._writer_waits
                continue
            if self._failure is not None:
                raise self._failure  # the body cannot end well: the connection is dropped
            parts = self._parts
            last = self._ended
            self._parts = []
            self._size = 0
            self._wake_producer()
            self._sending = True
            try:
                await send(
                    {"type": "http.response.body", "body": b"".join(parts), "more_body": not last}
                )
            finally:
                self._sending = False
            if ctx.ttft_ms is None:
                self._first_content()
            if last:
                return

    async def _produce(self) -> None:
        """Translate the events into `_parts` until the stream ends, then mark the end."""
        try:
            last = await self._translate()
            self._parts.append(last)  # (the writer swaps the list: look it up after)
        except Exception as exc:
            # Not Bedrock's kind of failure (a parser or encoder bug): the writer raises it,
            # and the request ends as an internal error instead of waiting for ever.
            self._failure = exc
        finally:
            self._ended = True
            self._wake_writer()

    async def _translate(self) -> bytes:
        """Every event's bytes into `_parts`; returns the last bytes of the body."""
        encoder = self._encoder
        clock = time.perf_counter
        slice_started = done = clock()
        try:
            async for event in self._events:
                now = clock()
                if now - done > _SLICE_S:
                    # We waited for Bedrock, and others ran meanwhile: a new slice begins.
                    # (So events that come paced, as a real model sends them, do not each
                    # pause: only a run of work longer than a slice does.)
                    slice_started = now
                data = encoder.feed(event)
                if data:
                    self._parts.append(data)
                    self._size += len(data)
                    if self._writer_waits is not None:
                        self._wake_writer()
                    if self._sending and len(self._parts) >= _QUEUE_CHUNKS:
                        await self._room()
                done = clock()
                if done - slice_started > _SLICE_S:
                    # Let the event loop serve others (see _SLICE_S), then wake the writer:
                    # while we paused it held back, since more was coming at once; now it
                    # can tell whether we went on or went idle.
                    self._bursting = True
                    await self._lane.wait_turn()
                    self._bursting = False
                    if self._parts:
                        self._wake_writer()
                    slice_started = done = clock()
        except BedrockError as exc:
            # After the first byte the status is spent: the error becomes the last event(s)
            # in the surface's shape, so SDKs raise instead of returning a truncated answer.
            self._ctx.error_type = exc.name
            self._ctx.stream_error = exc.name
            return encoder.fail(exc)
        # A stream that ended without its stop event still gets its final events (and usage).
        return encoder.close()

    async def _room(self) -> None:
        """Wait until the writer has taken the parts (the client reads slowly)."""
        self._producer_waits = asyncio.get_running_loop().create_future()
        await self._producer_waits

    def _wake_writer(self) -> None:
        waiting, self._writer_waits = self._writer_waits, None
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    def _wake_producer(self) -> None:
        waiting, self._producer_waits = self._producer_waits, None
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    def _first_content(self) -> None:
        """Time to first token: when the first write holding content has been sent."""
        ctx = self._ctx
        if ctx.ttft_ms is None and self._encoder.output_chars:
            ctx.ttft_ms = round((time.perf_counter() - ctx.started) * 1000, 3)

    async def _close_upstream(self) -> None:
        with contextlib.suppress(Exception):
            await self._upstream.aclose()

    def _settle(self, disconnected: bool) -> None:
        """Put Bedrock's own usage in the context, or an estimate flagged as such."""
        ctx = self._ctx
        encoder = self._encoder
        if ctx.runtime.config.logging.log_prompts:
            ctx.completion = encoder.completion()
        if encoder.unknown_events:
            # A new Bedrock event type: ignored (clients never see it), but an operator
            # should know the wire format moved.
            logger.warning(
                "stream had %d event(s) of an unknown type",
                encoder.unknown_events,
                extra={"request_id": ctx.request_id},
            )
        if disconnected and ctx.error_type is None:
            ctx.error_type = "client_disconnected"
        if encoder.guardrail_intervened:
            ctx.guardrail_intervened = True
        if encoder.settle(ctx):
            return
        ctx.estimated = True
        ctx.usage.input_tokens = self._estimate_input_tokens()
        ctx.usage.output_tokens = encoder.estimated_output_tokens()


async def wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def estimate_tokens(characters: int) -> int:
    """About four characters per token: the usual rule of thumb for English text."""
    return math.ceil(characters / 4)
