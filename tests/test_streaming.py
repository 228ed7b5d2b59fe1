"""`gateway.server.streaming.SSEResponse`: how a stream's events become writes to the client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.types import Message

from gateway.config import GatewayConfig
from gateway.pipeline.context import RequestContext
from gateway.pipeline.runtime import Runtime
from gateway.server import streaming
from gateway.server.scheduling import SliceLane
from gateway.server.streaming import SSEResponse
from gateway.surfaces.openai_chat import ChatStreamEncoder
from gateway.translate.openai_chat.stream import StreamTranslator
from tests.harness import EventList

WORDS = 2_000


def converse_events(words: int) -> list[dict[str, Any]]:
    deltas = [
        {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": f"w{n} "}}}
        for n in range(words)
    ]
    return [
        {"messageStart": {"role": "assistant"}},
        *deltas,
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"messageStop": {"stopReason": "end_turn"}},
        {
            "metadata": {
                "usage": {"inputTokens": 5, "outputTokens": words, "totalTokens": 5 + words}
            }
        },
    ]


def sse_response(
    upstream: EventList, first: dict[str, Any], lane: SliceLane
) -> tuple[SSEResponse, RequestContext]:
    ctx = RequestContext(
        id="r",
        arrived=datetime.now(UTC),
        started=0.0,
        request_id="q",
        route="/v1/chat/completions",
        runtime=Runtime.build(GatewayConfig()),
    )
    translator = StreamTranslator(
        completion_id="chatcmpl-1", model="m", created=0, include_usage=True
    )
    response = SSEResponse(
        upstream,
        aiter(upstream),
        ChatStreamEncoder(translator),
        prefetched=[first],
        lane=lane,
        ctx=ctx,
        headers={},
        estimate_input_tokens=lambda: 0,
    )
    return response, ctx


async def never_disconnects() -> Message:
    await asyncio.Event().wait()
    raise AssertionError


def test_a_burst_goes_out_in_few_writes_while_other_tasks_still_run() -> None:
    events = converse_events(WORDS)
    upstream = EventList(events[1:])  # one read from Bedrock, many events
    response, record = sse_response(upstream, events[0], SliceLane())
    writes: list[bytes] = []
    turns = 0

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            writes.append(message["body"])

    async def other_request() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    async def main() -> None:
        ticker = asyncio.ensure_future(other_request())
        await response({"type": "http"}, never_disconnects, send)
        ticker.cancel()

    asyncio.run(main())

    body = b"".join(writes)
    frames = [line[6:] for line in body.split(b"\n\n") if line.startswith(b"data: ")]
    assert frames[-1] == b"[DONE]"
    chunks = [json.loads(frame) for frame in frames[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "".join(f"w{n} " for n in range(WORDS))
    assert chunks[-1]["usage"]["completion_tokens"] == WORDS
    assert upstream.closed and record.usage.output_tokens == WORDS
    # Translating 2,000 events takes many of the producer's time slices: other requests got
    # the event loop in between (a stream must not hold it for its whole burst) ...
    assert turns > 5
    # ... and yet the burst was not cut into a write per slice: the writer held back until
    # the producer went idle, or until it held 64 KiB.
    assert len(writes) <= 2 + len(body) // (64 * 1024)


class CountedEvents(EventList):
    """An EventList that counts the events its stream has taken so far."""

    taken = 0

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        for event in self.events:
            CountedEvents.taken += 1
            yield event


def test_a_new_request_goes_ahead_of_the_bursts_of_busy_streams(monkeypatch: Any) -> None:
    # Every event a slice of its own, so that slices can be counted instead of timed.
    monkeypatch.setattr(streaming, "_SLICE_S", 0.0)
    busy, probe_turns = 8, 5
    lane = SliceLane()

    async def send(message: Message) -> None:
        pass

    async def main() -> int:
        events = converse_events(200)
        streams = []
        for _ in range(busy):
            response, _ = sse_response(CountedEvents(events[1:]), events[0], lane)
            streams.append(
                asyncio.ensure_future(response({"type": "http"}, never_disconnects, send))
            )
        for _ in range(100):  # until all of them are mid-burst
            if len(lane) == busy:
                break
            await asyncio.sleep(0)
        # A request starting now needs a few turns of the loop before its first token.
        before = CountedEvents.taken
        for _ in range(probe_turns):
            await asyncio.sleep(0)
        during = CountedEvents.taken - before
        await asyncio.gather(*streams)
        return during

    during = asyncio.run(main())
    # With `sleep(0)` between slices every busy stream ran one in each of those turns
    # (8 x 5 = 40 events); through the lane, about one stream per turn did.
    assert during <= probe_turns + 1, during
    assert CountedEvents.taken == busy * (len(converse_events(200)) - 1)


class FailingEvents(EventList):
    """A stream that breaks in a way that is not a `BedrockError` (a parser bug, say)."""

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        yield self.events[0]
        raise RuntimeError("unparseable frame")


def test_an_unexpected_failure_ends_the_response_instead_of_hanging() -> None:
    """It used to kill the producer alone, and the writer waited for the client to leave."""
    events = converse_events(3)
    upstream = FailingEvents(events[1:])
    response, _ = sse_response(upstream, events[0], SliceLane())
    bodies: list[Message] = []

    async def send(message: Message) -> None:
        bodies.append(message)

    async def main() -> None:
        await asyncio.wait_for(response({"type": "http"}, never_disconnects, send), 5)

    with pytest.raises(RuntimeError, match="unparseable frame"):
        asyncio.run(main())
    # The handler records it as an internal error; the body never says it ended well.
    assert all(message.get("more_body", True) for message in bodies)
    assert upstream.closed


def test_a_client_that_stops_reading_stops_the_reads_from_bedrock() -> None:
    """What piles up is bounded: a burst the writer holds back (up to 64 KiB), then a
    bounded number of chunks behind the write that waits; then the producer waits."""
    events = converse_events(WORDS)
    upstream = CountedEvents(events[1:])
    CountedEvents.taken = 0
    response, _ = sse_response(upstream, events[0], SliceLane())
    stalled = asyncio.Event()

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body" and message["more_body"]:
            if stalled.is_set():
                await asyncio.Event().wait()  # the client's window is full, for ever
            stalled.set()

    async def main() -> int:
        task = asyncio.ensure_future(response({"type": "http"}, never_disconnects, send))
        for _ in range(200):
            await asyncio.sleep(0)
        taken = CountedEvents.taken
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return taken

    taken = asyncio.run(main())
    smallest_chunk = 150  # bytes, for this stream's chunks
    held = streaming._COALESCE_BYTES // smallest_chunk + 1
    assert taken <= held + 2 * streaming._QUEUE_CHUNKS < WORDS, taken
    assert upstream.closed
