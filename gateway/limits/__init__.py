"""Request, token and budget limits per API key and per team.

    store = open_counter_store(config.limits.store, prefix=..., timeout_s=...)
    limiter = Limiter(store, teams=config.auth.teams, spend=usage_store, ...)
    admission = await limiter.admit(principal)        # before Bedrock: 429 or 503
    ...
    await limiter.charge(admission, tokens=..., cost_usd=...)   # after, with real usage

`gateway.limits.limiter` has the rules, `gateway.limits.policy` the window arithmetic and
the `CounterStore` protocol, `memory` and `redis` the two stores.
"""

from __future__ import annotations

from gateway.limits.limiter import Admission, Limiter, SpendSource
from gateway.limits.memory import MemoryCounterStore
from gateway.limits.policy import CounterStore, CounterStoreError

__all__ = [
    "Admission",
    "CounterStore",
    "CounterStoreError",
    "Limiter",
    "MemoryCounterStore",
    "SpendSource",
    "open_counter_store",
]


def open_counter_store(url: str, *, prefix: str = "bgw:", timeout_s: float = 0.25) -> CounterStore:
    """The store for the `limits.store` setting: `memory`, or a `redis://` or `rediss://`
    URL (`prefix` and `timeout_s` apply to Redis only). Nothing connects yet."""
    if url == "memory":
        return MemoryCounterStore()
    scheme, sep, _ = url.partition("://")
    if sep and scheme in ("redis", "rediss"):
        # Imported here so that a memory-only gateway never loads the Redis client.
        from gateway.limits.redis import RedisCounterStore

        return RedisCounterStore.from_url(url, prefix=prefix, timeout_s=timeout_s)
    # Never echo a URL whole: it may carry a password.
    given = f"{scheme}://..." if sep else ("<redacted>" if "@" in url else url)
    raise ValueError(f"limits.store must be 'memory' or a redis:// or rediss:// URL, not {given!r}")
