"""What only the Redis store does: key layout and expiry, the Lua arithmetic, outages.

The outage tests need no Redis at all: a port nobody listens on, and a listener that
never answers, both on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator

import pytest

from gateway.errors import OverloadedError
from gateway.limits import Admission, Limiter
from gateway.limits.policy import WINDOW_MS, Window, wait_ms
from gateway.limits.redis import RedisCounterStore
from tests.limits.conftest import T0, Clock, Stores, principal

T0_MS = int(T0 * 1000)


@pytest.mark.redis
async def test_keys_are_prefixed_and_expire(redis_stores: Stores, clock: Clock) -> None:
    assert redis_stores.raw is not None
    limiter = redis_stores.limiter(clock)
    admission = await limiter.admit(principal("app1", rpm=5, tpm=100))
    await limiter.charge(admission, tokens=42, cost_usd=None)

    bucket = T0_MS // WINDOW_MS
    keys = sorted([k.decode() async for k in redis_stores.raw.scan_iter(f"{redis_stores.prefix}*")])
    assert keys == [
        f"{redis_stores.prefix}k:app1:rpm:{bucket}",
        f"{redis_stores.prefix}k:app1:tpm:{bucket}",
    ]
    for key in keys:
        assert 0 < await redis_stores.raw.pttl(key) <= 3 * WINDOW_MS
    assert await redis_stores.raw.get(keys[1]) == b"42"


@pytest.mark.redis
@pytest.mark.parametrize(
    ("previous", "current", "limit", "elapsed_ms"),
    [
        (3, 0, 3, 19_000),
        (7, 2, 7, 1),
        (13, 5, 11, 33_333),
        (0, 1, 1, 59_999),
        (250, 0, 100, 0),
        (1000, 999, 1000, 12_345),
        (0, 5000, 17, 45_678),
    ],
)
async def test_lua_and_python_agree_on_retry_after(
    redis_stores: Stores, previous: int, current: int, limit: int, elapsed_ms: int
) -> None:
    assert redis_stores.raw is not None
    store = redis_stores.open()
    bucket = T0_MS // WINDOW_MS
    for index, count in ((bucket, current), (bucket - 1, previous)):
        if count:
            await redis_stores.raw.set(f"{redis_stores.prefix}c:{index}", count, px=60_000)

    blocked = await store.admit([Window("c", limit, count=True)], T0_MS + elapsed_ms)

    assert blocked is not None
    assert blocked.retry_after_ms == wait_ms(previous, current, limit, elapsed_ms)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again; nothing else on this host listens there by chance


async def test_unreachable_redis_fails_open_and_reports(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisCounterStore.from_url(f"redis://127.0.0.1:{closed_port()}/0", cooldown_s=0)
    errors: list[str] = []
    limiter = Limiter(store, teams={}, spend=None, on_store_error=errors.append, clock=clock)
    app1 = principal("app1", rpm=1, tpm=10)
    try:
        with caplog.at_level(logging.WARNING, logger="gateway.limits"):
            for _ in range(3):  # rpm 1, yet all admitted: nothing could count them
                admission = await limiter.admit(app1)
            await limiter.charge(admission, tokens=5, cost_usd=None)
    finally:
        await store.aclose()

    assert errors == ["counters"] * 4
    logged = [r for r in caplog.records if "limits store failed" in r.getMessage()]
    assert len(logged) == 1
    assert "admitted unchecked" in logged[0].getMessage()


async def test_unreachable_redis_fails_closed_when_configured(clock: Clock) -> None:
    store = RedisCounterStore.from_url(f"redis://127.0.0.1:{closed_port()}/0")
    errors: list[str] = []
    limiter = Limiter(
        store, teams={}, spend=None, fail_open=False, on_store_error=errors.append, clock=clock
    )
    try:
        with pytest.raises(OverloadedError) as caught:
            await limiter.admit(principal("app1", rpm=10))
        # The charge of a request already served is never refused, only reported.
        await limiter.charge(Admission(("k:app1:tpm",)), tokens=5, cost_usd=None)
    finally:
        await store.aclose()

    assert caught.value.status == 503
    assert "limits store unavailable" in caught.value.message
    assert errors == ["counters", "counters"]


@pytest.fixture
async def silent_server() -> AsyncIterator[tuple[int, list[int]]]:
    """A TCP listener that accepts and never answers; yields its port and a connection
    count."""
    connections: list[int] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await asyncio.wait_for(reader.read(), timeout=5)
        except TimeoutError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], connections
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), timeout=5)


async def test_slow_redis_times_out_then_cools_down(
    silent_server: tuple[int, list[int]], clock: Clock
) -> None:
    port, connections = silent_server
    store = RedisCounterStore.from_url(f"redis://127.0.0.1:{port}/0", timeout_s=0.1, cooldown_s=30)
    errors: list[str] = []
    limiter = Limiter(store, teams={}, spend=None, on_store_error=errors.append, clock=clock)
    app1 = principal("app1", rpm=1)
    try:
        started = time.monotonic()
        await limiter.admit(app1)
        first_s = time.monotonic() - started
        started = time.monotonic()
        for _ in range(5):
            await limiter.admit(app1)
        cooled_s = time.monotonic() - started
    finally:
        await store.aclose()

    assert 0.09 <= first_s < 1.0  # bounded by timeout_s, not by the socket's patience
    assert cooled_s < 0.05  # within the cool-down nothing waits on Redis again
    assert len(connections) == 1
    assert errors == ["counters"] * 6
