"""Clients that vanish mid-stream: Bedrock reading stops, nothing leaks, usage is flagged.

200 streams are dropped at random points. Afterwards the gateway's asyncio tasks and its
TCP connections to Bedrock must return to the baseline, and every request must have one
usage record marked `client_disconnected` and `estimated` (the metadata event with
Bedrock's own numbers was never read).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable

import httpx

from tests.fullpath.conftest import API_KEY, RunningGateway, ledger, script

STREAMS = 200
CONCURRENCY = 25
WORDS = 60
REPLY = " ".join(["word"] * WORDS)


def _established_to(port: int) -> int:
    """ESTABLISHED TCP connections whose remote end is 127.0.0.1:port (Linux /proc)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                lines = handle.readlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01":
                count += 1
    return count


def _tasks(gateway: RunningGateway) -> int:
    loop = gateway.server.loop
    assert loop is not None

    async def count() -> int:
        return len(asyncio.all_tasks())

    return asyncio.run_coroutine_threadsafe(count(), loop).result(timeout=5)


def _settle(measure: Callable[[], int], target: int, timeout_s: float = 10) -> int:
    deadline = time.monotonic() + timeout_s
    value = measure()
    while value > target and time.monotonic() < deadline:
        time.sleep(0.05)
        value = measure()
    return value


async def _drop_after(client: httpx.AsyncClient, chunks: int, index: int) -> None:
    body = {
        "model": "nova-micro",
        "stream": True,
        # 25 ms between words: with 4 ms, and on a slower machine with 10 ms, this client
        # (Python, 25 streams, sharing the GIL with the gateway and the emulator) fell so
        # far behind that a quarter or more of the streams had been sent in full before it
        # "left", and the count below flaked.
        "messages": [{"role": "user", "content": script(reply=REPLY, delay_ms=25)}],
    }
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        seen = 0
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                seen += 1
                if seen >= chunks:
                    break
    # Leaving the block closes this connection: the gateway sees http.disconnect.


async def _storm(url: str) -> None:
    rng = random.Random(20261121)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=0)
    semaphore = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(
        base_url=url, headers={"authorization": f"Bearer {API_KEY}"}, limits=limits, timeout=30
    ) as client:

        async def one(index: int) -> None:
            async with semaphore:
                await _drop_after(client, rng.randint(1, WORDS - 5), index)

        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(STREAMS))), timeout=120)


def test_disconnects_release_upstream_and_leak_nothing(gateway: RunningGateway, emulator) -> None:  # type: ignore[no-untyped-def]
    gateway.client().chat.completions.create(
        model="nova-micro", messages=[{"role": "user", "content": "warm"}]
    )
    baseline_tasks = _tasks(gateway)
    baseline_upstream = _established_to(emulator.port)

    asyncio.run(_storm(gateway.url))

    assert _settle(lambda: _tasks(gateway), baseline_tasks) <= baseline_tasks
    # Every dropped stream closed its upstream connection instead of returning it to the pool.
    assert _settle(lambda: _established_to(emulator.port), baseline_upstream) <= baseline_upstream

    records = ledger(gateway)
    dropped = [r for r in records if r["stream"]]
    assert len(dropped) == STREAMS
    assert all(r["status"] == 200 for r in dropped)
    # Either the gateway saw the client leave before Bedrock's stream ended (flagged, with
    # an estimate), or Bedrock's remaining events were already buffered and were read to
    # the end: then the record carries Bedrock's own numbers (60 words = 60 tokens).
    flagged = [r for r in dropped if r["error_type"] == "client_disconnected"]
    for record in dropped:
        if record["estimated"]:
            assert record["error_type"] == "client_disconnected"
            # ceil(characters / 4) of what was produced: never more than the whole reply's.
            assert record["output_tokens"] <= math.ceil(len(REPLY) / 4)
        else:
            assert record["output_tokens"] == WORDS
    assert len(flagged) >= STREAMS * 0.8, f"only {len(flagged)} of {STREAMS} noticed"
    assert sum(r["estimated"] for r in flagged) >= STREAMS * 0.8
