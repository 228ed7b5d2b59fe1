"""Fixtures for the limits tests: a clock the test moves, and both counter stores.

`stores` makes counter stores on one backend: the in-process store, or Redis at
`GATEWAY_TEST_REDIS_URL` (skipped, with the reason, when unset or unreachable). Every
Redis test gets a key prefix of its own and deletes its keys afterwards, so runs sharing
a server never see each other's counters. Several stores from one `Stores` share their
counters, like a fleet of gateways on one Redis.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis.asyncio
from redis.exceptions import RedisError

from gateway.config import LimitsFields
from gateway.keys.index import Principal
from gateway.limits import Limiter, SpendSource
from gateway.limits.memory import MemoryCounterStore
from gateway.limits.policy import CounterStore
from gateway.limits.redis import RedisCounterStore

# A minute boundary (epoch milliseconds divisible by 60,000), mid-month.
T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC).timestamp()

_redis_checked: dict[str, str | None] = {}


class Clock:
    """Seconds since the epoch, moved only by the test."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def principal(
    key_id: str = "app1",
    *,
    team: str | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    budget: str | None = None,
) -> Principal:
    return Principal(
        key_id=key_id,
        team=team,
        user=None,
        models=None,
        is_admin=False,
        limits=LimitsFields(
            rpm=rpm, tpm=tpm, budget_usd_monthly=Decimal(budget) if budget else None
        ),
    )


async def _redis_problem(url: str) -> str | None:
    if url not in _redis_checked:
        client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            _redis_checked[url] = f"Redis at GATEWAY_TEST_REDIS_URL unreachable: {exc}"
        else:
            _redis_checked[url] = None
        finally:
            await client.aclose()
    return _redis_checked[url]


@dataclass
class Stores:
    """Counter stores on one backend; `new()` gives another view of the same counters."""

    kind: str
    new: Callable[[], CounterStore]
    raw: redis.asyncio.Redis | None = None  # Redis only: to inspect keys directly
    prefix: str = ""
    opened: list[CounterStore] = field(default_factory=list)

    def open(self) -> CounterStore:
        store = self.new()
        self.opened.append(store)
        return store

    def limiter(
        self,
        clock: Clock,
        *,
        teams: Mapping[str, LimitsFields] | None = None,
        spend: SpendSource | None = None,
        fail_open: bool = True,
        on_store_error: Callable[[str], None] | None = None,
    ) -> Limiter:
        """A Limiter on a new store of this backend (a new gateway, for Redis)."""
        return Limiter(
            self.open(),
            teams=teams or {},
            spend=spend,
            fail_open=fail_open,
            on_store_error=on_store_error,
            clock=clock,
        )


_BEHAVIOUR_TIMEOUT_S = 5.0


@contextlib.asynccontextmanager
async def _backend(kind: str) -> AsyncIterator[Stores]:
    if kind == "memory":
        shared = MemoryCounterStore()
        yield Stores("memory", lambda: shared)
        return
    url = os.environ.get("GATEWAY_TEST_REDIS_URL")
    if not url:
        pytest.skip("GATEWAY_TEST_REDIS_URL is not set")
    problem = await _redis_problem(url)
    if problem:
        pytest.skip(problem)
    prefix = f"bgw-test:{uuid.uuid4().hex[:12]}:"
    raw = redis.asyncio.Redis.from_url(url)
    # Behaviour tests, not latency tests: on a loaded CI machine the production timeout
    # (0.25 s) can expire, and fail-open would then admit what the test expects refused.
    # The timeout itself is tested with its own short value in test_redis.py.
    result = Stores(
        "redis",
        lambda: RedisCounterStore.from_url(url, prefix=prefix, timeout_s=_BEHAVIOUR_TIMEOUT_S),
        raw=raw,
        prefix=prefix,
    )
    try:
        yield result
    finally:
        for store in result.opened:
            await store.aclose()
        keys = [key async for key in raw.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await raw.delete(*keys)
        await raw.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    """Each backend in turn."""
    async with _backend(request.param) as result:
        yield result


@pytest.fixture
async def redis_stores() -> AsyncIterator[Stores]:
    """Redis only, for what only the Redis store does; mark such tests `redis`."""
    async with _backend("redis") as result:
        yield result


@pytest.fixture
def clock() -> Clock:
    return Clock()
