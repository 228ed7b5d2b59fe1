"""Counters in Redis: `limits.store: redis://...`, shared by every gateway of a fleet.

Each admission is one round trip: a Lua script reads the current and previous buckets of
every applicable window (key and team, rpm and tpm), decides, and counts the request in
all of them or in none. Redis runs a script to completion before serving anything else,
so fifty gateways racing for the last slot of a limit get exactly one winner, with no
lock and no retry loop. The script computes `retry-after` with the same formula as
`gateway.limits.policy.wait_ms`.

The time comes from the gateway (`now_ms`), not from Redis `TIME`: tests can move it, and
the script stays deterministic. Hosts of a fleet are assumed to be NTP-synced; a skew of
a few hundred milliseconds only shifts where that host puts the minute boundary.

Memory in Redis stays bounded: a bucket key is `<prefix><counter>:<minute index>` and
expires three minutes after its last write, long after the estimate stops reading it.
The prefix (`bgw:` by default) keeps several deployments apart on one server. All keys
of a script must live on one node, so this is for a single Redis endpoint (a managed
primary with replicas is fine), not Redis Cluster.

Failures are never retried here: the Limiter is waiting with a request in hand. Any
Redis error or a call slower than `timeout_s` becomes `CounterStoreError`, and for
`cooldown_s` afterwards calls fail at once instead of each paying the timeout again,
so a dead Redis costs requests nothing but the Limiter's fail-open decision.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from gateway.limits.policy import WINDOW_MS, Blocked, CounterStoreError, Window

__all__ = ["RedisCounterStore"]

# KEYS: per window i, KEYS[2i-1] = its current bucket, KEYS[2i] = its previous bucket.
# ARGV: elapsed ms into the minute, window ms, key TTL ms, then per window: limit, 1|0
# (count the request or only check). Returns {0, 0} when admitted, else {i, wait ms}.
_ADMIT = """
local elapsed = tonumber(ARGV[1])
local width = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local windows = #KEYS / 2
for i = 1, windows do
  local limit = tonumber(ARGV[2 + 2 * i])
  local current = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local previous = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  if previous * (width - elapsed) / width + current + 1 > limit then
    local room = limit - 1 - current
    local wait
    if room >= 0 and previous > 0 then
      wait = (width - elapsed) - room * width / previous
    else
      local after = 0
      if current > 0 then after = width - (limit - 1) * width / current end
      wait = (width - elapsed) + math.max(0, after)
    end
    return {i, math.max(1, math.ceil(wait))}
  end
end
for i = 1, windows do
  if ARGV[3 + 2 * i] == '1' then
    redis.call('INCR', KEYS[2 * i - 1])
    redis.call('PEXPIRE', KEYS[2 * i - 1], ttl)
  end
end
return {0, 0}
"""

# KEYS: current buckets. ARGV: amount, key TTL ms.
_ADD = """
for i = 1, #KEYS do
  redis.call('INCRBY', KEYS[i], ARGV[1])
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
return #KEYS
"""

_TTL_MS = 3 * WINDOW_MS


class RedisCounterStore:
    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        prefix: str = "bgw:",
        timeout_s: float = 0.25,
        cooldown_s: float = 1.0,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._cooldown_s = cooldown_s
        self._admit = client.register_script(_ADMIT)
        self._add = client.register_script(_ADD)
        self._down_until = 0.0  # time.monotonic() before which calls fail at once

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = "bgw:", timeout_s: float = 0.25, cooldown_s: float = 1.0
    ) -> RedisCounterStore:
        """A client for `redis://` or `rediss://` (TLS) URLs, with short socket timeouts
        and no retries of its own. Connects lazily, on the first admission."""
        client = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client, prefix=prefix, timeout_s=timeout_s, cooldown_s=cooldown_s)

    async def admit(self, windows: Sequence[Window], now_ms: int) -> Blocked | None:
        bucket, elapsed = divmod(now_ms, WINDOW_MS)
        keys: list[str] = []
        args: list[int] = [elapsed, WINDOW_MS, _TTL_MS]
        for window in windows:
            keys += (self._key(window.name, bucket), self._key(window.name, bucket - 1))
            args += (window.limit, 1 if window.count else 0)
        index, wait = await self._run(self._admit, keys, args)
        return None if index == 0 else Blocked(int(index) - 1, int(wait))

    async def add(self, names: Sequence[str], amount: int, now_ms: int) -> None:
        bucket = now_ms // WINDOW_MS
        keys = [self._key(name, bucket) for name in names]
        await self._run(self._add, keys, [amount, _TTL_MS])

    async def aclose(self) -> None:
        await self._client.aclose()

    def _key(self, name: str, bucket: int) -> str:
        return f"{self._prefix}{name}:{bucket}"

    async def _run(self, script: AsyncScript, keys: list[str], args: list[int]) -> Any:
        if time.monotonic() < self._down_until:
            raise CounterStoreError("Redis failed moments ago; not retried yet")
        try:
            async with asyncio.timeout(self._timeout_s):
                return await script(keys=keys, args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            self._down_until = time.monotonic() + self._cooldown_s
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
            raise CounterStoreError(f"Redis: {reason}") from exc
