"""`Upstream`: a surface's only way to Bedrock, handed over once the request is admitted.

What every call needs, whatever the surface: the model in each of its regions and its
fallbacks in order, bounded retries (`gateway.bedrock.retries`), the regions' circuit
breaker, the client of the caller's team when the team has an IAM role to assume, the
model's first-token deadline, giving up as soon as the client has left, the record of
which model served and which Bedrock errors were seen, and remote image fetches (which
cost our bandwidth and the image host's, so they too wait for admission). A stream is read
up to its first content event *before* the response starts, so a refusal, an early
exception frame or a silent model is still an ordinary HTTP error with the right status,
or a retry, or a fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.requests import ClientDisconnect
from starlette.types import Receive

from gateway.bedrock.client import BedrockClient, BedrockError, BedrockStream
from gateway.bedrock.retries import FIRST_TOKEN_TIMEOUT, call_with_fallbacks
from gateway.server.deadlines import deadlines
from gateway.server.streaming import SSEResponse, StreamEncoder, wait_for_disconnect

if TYPE_CHECKING:
    from gateway.bedrock.catalog import ResolvedModel
    from gateway.pipeline.context import RequestContext
    from gateway.pipeline.runtime import Gateway

__all__ = ["OpenStream", "Upstream"]

T = TypeVar("T")

# Remote images fetched at once for one request; the process-wide bound is the fetcher's.
_IMAGE_FETCHES_PER_REQUEST = 4

_NO_DEADLINE = contextlib.nullcontext()


def _deadline(timeout_s: float | None) -> contextlib.AbstractAsyncContextManager[object]:
    """`asyncio.timeout(timeout_s)`, or nothing at all for a model without a deadline
    (most of them): a Timeout object also looks up the loop and the current task."""
    return _NO_DEADLINE if timeout_s is None else asyncio.timeout(timeout_s)


@dataclass(slots=True)
class OpenStream:
    """A Bedrock stream read up to its first content event."""

    upstream: BedrockStream
    events: AsyncIterator[dict[str, Any]]
    prefetched: list[dict[str, Any]]


# How long a whole-answer call runs before a task starts watching for the client leaving:
# short enough that a departed client costs at most this much Bedrock time.
WATCH_AFTER_S = 0.05


class Upstream:
    def __init__(self, gateway: Gateway, ctx: RequestContext, receive: Receive) -> None:
        assert ctx.model is not None, "the model is resolved before admission"
        self._gateway = gateway
        self._ctx = ctx
        self._receive = receive
        self.candidates = ctx.runtime.catalog.candidates(ctx.model)
        # The team's own client (signed with its assumed role), else the gateway's.
        self._bedrock = gateway.bedrock
        if gateway.team_clients and ctx.principal is not None and ctx.principal.team:
            self._bedrock = gateway.team_clients.get(ctx.principal.team, gateway.bedrock)

    async def call(
        self,
        attempt: Callable[[BedrockClient, ResolvedModel], Awaitable[T]],
        *,
        estimate_input: Callable[[], int],
    ) -> tuple[ResolvedModel, T]:
        """One whole answer: `attempt(client, model)` over the candidates, with retries,
        cancelled if the client leaves (then the usage is an estimate, since Bedrock was
        asked and may bill an answer we stopped waiting for)."""
        gateway = self._gateway
        bedrock = self._bedrock

        async def timed(candidate: ResolvedModel) -> T:
            timeout_s = candidate.config.ttft_timeout_s if candidate.config else None
            try:
                # Without a stream the whole answer is the first token the client sees.
                async with _deadline(timeout_s):
                    return await attempt(bedrock, candidate)
            except TimeoutError:
                raise BedrockError(FIRST_TOKEN_TIMEOUT, f"no answer within {timeout_s} s") from None

        try:
            used, answer = await self._while_connected(
                call_with_fallbacks(
                    self.candidates,
                    timed,
                    policy=gateway.retry_policy,
                    on_error=self._failed,
                    breaker=gateway.breaker,
                    on_failover=self._failover if gateway.breaker is not None else None,
                )
            )
        except ClientDisconnect:
            self._ctx.estimated = True
            self._ctx.usage.input_tokens = estimate_input()
            raise
        self._served(used)
        return used, answer

    async def open_stream(
        self,
        start: Callable[[BedrockClient, ResolvedModel], Awaitable[BedrockStream]],
        *,
        is_preamble: Callable[[dict[str, Any]], bool],
    ) -> tuple[ResolvedModel, OpenStream]:
        """A stream from the first candidate that answers, read up to (and including) its
        first event for which `is_preamble` is false."""
        gateway = self._gateway
        bedrock = self._bedrock

        async def opened(candidate: ResolvedModel) -> OpenStream:
            upstream: BedrockStream | None = None
            prefetched: list[dict[str, Any]] = []
            timeout_s = candidate.config.ttft_timeout_s if candidate.config else None
            try:
                # The deadline covers the call itself: a Bedrock that never sends its
                # response headers has not sent a first token either.
                async with _deadline(timeout_s):
                    upstream = await start(bedrock, candidate)
                    events = aiter(upstream)
                    async for event in events:
                        prefetched.append(event)
                        if not is_preamble(event):
                            break
            except TimeoutError:
                if upstream is not None:
                    await upstream.aclose()
                raise BedrockError(
                    FIRST_TOKEN_TIMEOUT, f"no first token within {timeout_s} s"
                ) from None
            except BaseException:
                if upstream is not None:
                    await upstream.aclose()
                raise
            return OpenStream(upstream, events, prefetched)

        used, stream = await call_with_fallbacks(
            self.candidates,
            opened,
            policy=gateway.retry_policy,
            on_error=self._failed,
            breaker=gateway.breaker,
            on_failover=self._failover if gateway.breaker is not None else None,
        )
        self._served(used)
        return used, stream

    def stream_response(
        self,
        stream: OpenStream,
        encoder: StreamEncoder,
        *,
        headers: Mapping[str, str],
        estimate_input: Callable[[], int],
    ) -> SSEResponse:
        """The SSE response that sends `stream` through `encoder` and settles the usage."""
        return SSEResponse(
            stream.upstream,
            stream.events,
            encoder,
            prefetched=stream.prefetched,
            lane=self._gateway.stream_lane,
            ctx=self._ctx,
            headers=headers,
            estimate_input_tokens=estimate_input,
        )

    async def invoke_model(self, body: bytes, *, model: ResolvedModel) -> Any:
        """One InvokeModel call, no retries (embeddings fan out and retry nothing)."""
        self._ctx.region = model.region or self._gateway.default_region
        try:
            return await self._bedrock.invoke_model(model.bedrock_id, body, region=model.region)
        except BedrockError as exc:
            self._failed(model, exc)
            raise

    async def fetch_images(self, urls: Mapping[str, str]) -> dict[str, tuple[str, bytes]]:
        """Remote images (url -> its JSON path, for errors), a few at a time; the first
        failure cancels the rest, since the request fails anyway."""
        if not urls:
            return {}
        fetcher = self._gateway.images
        limit = asyncio.Semaphore(_IMAGE_FETCHES_PER_REQUEST)

        async def fetch(url: str, param: str) -> tuple[str, bytes]:
            async with limit:
                return await fetcher.fetch(url, param=param)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = {url: group.create_task(fetch(url, param)) for url, param in urls.items()}
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        return {url: task.result() for url, task in tasks.items()}

    def _failed(self, candidate: ResolvedModel, exc: BedrockError) -> None:
        ctx = self._ctx
        ctx.model = candidate
        ctx.region = candidate.region or self._gateway.default_region
        ctx.error_type = exc.name
        self._guardrail_of(candidate)
        self._gateway.metrics.upstream_errors.labels(candidate.metric_label, exc.name).inc()

    def _failover(self, origin: ResolvedModel, target: ResolvedModel) -> None:
        self._gateway.metrics.region_failovers.labels(
            origin.metric_label,
            origin.region or self._gateway.default_region or "default",
            target.region or self._gateway.default_region or "default",
        ).inc()

    def _served(self, used: ResolvedModel) -> None:
        self._ctx.model = used
        self._ctx.region = used.region or self._gateway.default_region
        self._ctx.error_type = None
        self._guardrail_of(used)

    def _guardrail_of(self, model: ResolvedModel) -> None:
        # The record names the guardrail of the model that was called last (a fallback
        # may have another); nothing to do when no guardrail is configured.
        ctx = self._ctx
        if ctx.runtime.guardrails is not None:
            guardrail = ctx.guardrail_for(model)
            ctx.guardrail_id = guardrail.id if guardrail is not None else None

    async def _while_connected(self, work: Awaitable[T]) -> T:
        """`work`, cancelled as soon as the client disconnects: no Bedrock time, retries or
        fallbacks for an answer nobody will read. (Streams watch for this in `SSEResponse`.)

        The work runs in this task and one watcher task cancels it if the client leaves, the
        shape of `asyncio.timeout`. The watcher starts only once the work has run for
        `WATCH_AFTER_S`: most answers come sooner, and a task per request (created, run,
        cancelled) was a visible share of a short request's CPU. A client that left earlier
        is still noticed then, since `receive()` reports a disconnect that already happened.
        """
        handler = asyncio.current_task()
        assert handler is not None, "called outside a task"
        client_left = finished = False
        watcher: asyncio.Future[None] | None = None

        def on_watcher_done(done: asyncio.Future[None]) -> None:
            nonlocal client_left
            if done.cancelled():
                return
            done.exception()  # a failing receive() too means nobody is reading any more
            if not finished:
                client_left = True
                handler.cancel()

        def start_watching() -> None:
            nonlocal watcher
            watcher = asyncio.ensure_future(wait_for_disconnect(self._receive))
            watcher.add_done_callback(on_watcher_done)

        table = deadlines()  # (a loop timer per request cost more than this watch)
        timer = table.call_later(WATCH_AFTER_S, start_watching)
        try:
            return await work
        except asyncio.CancelledError:
            if client_left and handler.uncancel() == 0:
                raise ClientDisconnect() from None
            raise  # we are being cancelled ourselves
        finally:
            finished = True
            table.cancel(timer)
            if watcher is not None:
                watcher.cancel()
