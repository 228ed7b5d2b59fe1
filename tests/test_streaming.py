"""`gateway.streaming.SSEResponse`: how a stream's events become writes to the client."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from starlette.types import Message

from gateway.streaming import SSEResponse
from gateway.translate.stream import StreamTranslator
from gateway.usage.record import UsageRecord
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


def test_a_burst_goes_out_in_few_writes_while_other_tasks_still_run() -> None:
    events = converse_events(WORDS)
    upstream = EventList(events[1:])  # one read from Bedrock, many events
    record = UsageRecord(id="r", ts=datetime.now(UTC), request_id="q", route="/v1/chat/completions")
    response = SSEResponse(
        upstream,
        aiter(upstream),
        StreamTranslator(completion_id="chatcmpl-1", model="m", created=0, include_usage=True),
        prefetched=events[:1],
        record=record,
        started=0.0,
        headers={},
        estimate_input_tokens=lambda: 0,
    )
    writes: list[bytes] = []
    turns = 0

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            writes.append(message["body"])

    async def receive() -> Message:
        await asyncio.Event().wait()  # the client never leaves
        raise AssertionError

    async def other_request() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    async def main() -> None:
        ticker = asyncio.ensure_future(other_request())
        await response({"type": "http"}, receive, send)
        ticker.cancel()

    asyncio.run(main())

    body = b"".join(writes)
    frames = [line[6:] for line in body.split(b"\n\n") if line.startswith(b"data: ")]
    assert frames[-1] == b"[DONE]"
    chunks = [json.loads(frame) for frame in frames[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "".join(f"w{n} " for n in range(WORDS))
    assert chunks[-1]["usage"]["completion_tokens"] == WORDS
    assert upstream.closed and record.output_tokens == WORDS
    # Translating 2,000 events takes many of the producer's time slices: other requests got
    # the event loop in between (a stream must not hold it for its whole burst) ...
    assert turns > 5
    # ... and yet the burst was not cut into a write per slice: the writer held back until
    # the producer went idle, or until it held 64 KiB.
    assert len(writes) <= 2 + len(body) // (64 * 1024)
