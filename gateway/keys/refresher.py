"""Keeps every gateway process's key index in step with the key store.

The request path authenticates with a dict probe on `gateway.runtime.keys` and must not
query a database. So each process polls the store's change counter (one indexed
single-row read) every `auth.refresh_s`, and only when it moved reads the key and team
tables, builds a new `KeyIndex` (config keys + stored keys) and swaps it in with the
runtime, in one assignment. Every worker and replica does the same, so a change made
through any of them is in force everywhere within `refresh_s` plus one read.

A SIGHUP reload rebuilds the runtime from the config file alone; the refresher notices
that the runtime is no longer the one it installed (checked every `_WATCH_S`, no store
read) and lays the stored keys over the new config at once.

Store teams carry limits too: the limiter is rebuilt with the config's teams plus the
store's whenever the store's teams change (the counters themselves live in the counter
store and survive the swap).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from gateway.config import GatewayConfig, LimitsFields
from gateway.keys.index import KeyIndex
from gateway.keys.records import KeySnapshot, StoredTeam
from gateway.keys.store import SqlKeyStore

if TYPE_CHECKING:
    from gateway.limits import Limiter
    from gateway.pipeline.runtime import Gateway, Runtime

__all__ = ["KeyRefresher", "merged_teams"]

logger = logging.getLogger("gateway.keys")

_WATCH_S = 0.25  # how often to look for a SIGHUP-swapped runtime (memory only)
_WARN_EVERY_S = 60.0


def merged_teams(config: GatewayConfig, teams: tuple[StoredTeam, ...]) -> dict[str, LimitsFields]:
    """The config's teams, and the store's where the config has no team of that name."""
    merged = {
        team.name: LimitsFields(
            rpm=team.rpm, tpm=team.tpm, budget_usd_monthly=team.budget_usd_monthly
        )
        for team in teams
    }
    merged.update(config.auth.teams)
    return merged


class KeyRefresher:
    def __init__(
        self,
        gateway: Gateway,
        store: SqlKeyStore,
        *,
        new_limiter: Callable[[GatewayConfig], Limiter],
    ) -> None:
        self.gateway = gateway
        self.store = store
        self._new_limiter = new_limiter
        self._snapshot = KeySnapshot(version=-1)
        self._installed: Runtime | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._warned_at = -_WARN_EVERY_S

    @property
    def snapshot(self) -> KeySnapshot:
        return self._snapshot

    async def start(self) -> None:
        """Load the store once (a failure here stops start-up), then poll in the background."""
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="key-refresher")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def refresh(self) -> bool:
        """Read the counter; reload and swap if it moved. True when something changed.

        The admin API calls this after each change, so the process that made it serves
        the new keys at once, not a poll later.
        """
        async with self._lock:
            version = await self.store.version()
            if version == self._snapshot.version:
                return False
            snapshot = await self.store.snapshot()
            teams_changed = snapshot.teams != self._snapshot.teams
            self._snapshot = snapshot
            self._install(rebuild_limiter=teams_changed)
            logger.info("key store loaded", extra={"version": snapshot.version})
            return True

    def _install(self, *, rebuild_limiter: bool) -> None:
        gateway = self.gateway
        runtime = gateway.runtime
        config = runtime.config
        runtime = replace(runtime, keys=KeyIndex(config.auth, self._snapshot))
        if rebuild_limiter:
            auth = config.auth.model_copy(
                update={"teams": merged_teams(config, self._snapshot.teams)}
            )
            gateway.limiter = self._new_limiter(config.model_copy(update={"auth": auth}))
        gateway.runtime = runtime
        self._installed = runtime

    async def _run(self) -> None:
        refresh_s = self.gateway.runtime.config.auth.refresh_s
        next_poll = time.monotonic() + refresh_s
        while True:
            await asyncio.sleep(min(_WATCH_S, refresh_s))
            if self.gateway.runtime is not self._installed:
                # SIGHUP: a fresh runtime (and limiter) from the config file alone.
                self._install(rebuild_limiter=True)
            if time.monotonic() < next_poll:
                continue
            next_poll = time.monotonic() + refresh_s
            try:
                await self.refresh()
            except Exception as exc:
                # Keep serving with the keys we have; the next poll tries again.
                now = time.monotonic()
                if now - self._warned_at >= _WARN_EVERY_S:
                    self._warned_at = now
                    logger.warning("key store unreachable, keeping the keys loaded: %r", exc)
