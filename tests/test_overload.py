"""Sustained overload of a real `serve` process: fast 503s, no queue, flat memory.

Beyond `server.max_concurrent_requests` the gateway answers 503 with `retry-after` at once
instead of queueing, so however long the overload lasts, memory does not grow with it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.harness import script
from tests.processes import GatewayProcessFactory, process_config, sha
from tests.servers import ServerThread

KEY = "sk-overload"
ROUNDS = 3
PER_ROUND = 600
CONCURRENCY = 100


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def overload(url: str, count: int) -> dict[int, int]:
    body = {
        "model": "nova-micro",
        "messages": [
            {
                "role": "user",
                "content": script(reply="slow", chunks=1, delay_ms=0, first_token_delay_ms=300),
            }
        ],
    }
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(
        base_url=url, limits=limits, timeout=30, headers={"authorization": f"Bearer {KEY}"}
    ) as client:
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def one() -> None:
            async with semaphore:
                response = await client.post("/v1/chat/completions", json=body)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 503:
                    assert response.headers["retry-after"]
                    assert response.json()["error"]["code"] == "overloaded"

        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), timeout=60)
    return statuses


def test_memory_stays_flat_under_sustained_overload(
    tmp_path: Path, emulator: ServerThread, gateway_process: GatewayProcessFactory
) -> None:
    config = process_config(
        tmp_path,
        emulator.url,
        keys=[{"id": "app1", "key_sha256": sha(KEY)}],
        logging={"format": "json", "level": "warning"},
    )
    config["server"]["max_concurrent_requests"] = 4
    gateway = gateway_process(config, tmp_path)
    pid = gateway.process.pid
    asyncio.run(overload(gateway.url, PER_ROUND))  # warm-up: allocators and caches settle
    before = rss_kb(pid)
    started = time.monotonic()
    totals: dict[int, int] = {}
    for _ in range(ROUNDS):
        for status, count in asyncio.run(overload(gateway.url, PER_ROUND)).items():
            totals[status] = totals.get(status, 0) + count
    after = rss_kb(pid)
    elapsed = time.monotonic() - started

    assert set(totals) <= {200, 503} and totals.get(503, 0) > totals.get(200, 0), totals
    assert sum(totals.values()) == ROUNDS * PER_ROUND
    # Refusals are immediate: 1,800 requests against 4 slots of 300 ms each would take
    # over two minutes if they queued.
    assert elapsed < 60
    assert after - before < 15 * 1024, f"RSS grew from {before} kB to {after} kB"
