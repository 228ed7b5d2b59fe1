"""The usage ledger goes away and comes back; requests never notice, and no record is lost
or counted twice.

The store is the real SQLite ledger behind a switch (`FlakyStore`). While it is down the
gateway keeps answering, the recorder moves waiting records to its spill file, and
`/readyz` says the store is unreachable; once it is back the spill file is replayed. A
write that commits and then reports a failure (a connection dropped after COMMIT) is
written again, and the store's idempotence keeps the ledger exact.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from gateway.usage.record import UsageRecord
from gateway.usage.store import UsageStore, open_store
from tests.faults.conftest import Launch, by_request, chat, drain_pool, fire, metric
from tests.fullpath.conftest import RunningGateway, ledger
from tests.servers import ServerThread

Recovery = Callable[[RunningGateway], AbstractContextManager[None]]


class StoreDown(ConnectionError):
    """What a driver raises when its database cannot be reached."""


class FlakyStore:
    """A `UsageStore` that fails on demand, in front of a real one.

    `down`: every call fails, as with a database that is unreachable. `commit_then_fail`:
    that many of the next writes are committed and then reported as failed. Switched from
    the test's thread, read on the gateway's loop: plain attributes are enough for that.
    """

    def __init__(self, inner: UsageStore) -> None:
        self.inner = inner
        self.down = False
        self.commit_then_fail = 0
        self.failed_writes = 0

    def _check(self) -> None:
        if self.down:
            raise StoreDown("usage store unreachable")

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def ping(self) -> None:
        self._check()
        await self.inner.ping()

    async def write(self, records: Sequence[UsageRecord]) -> None:
        if self.down:
            self.failed_writes += 1
            self._check()
        await self.inner.write(records)
        if self.commit_then_fail > 0:
            self.commit_then_fail -= 1
            self.failed_writes += 1
            raise StoreDown("connection lost after COMMIT")

    async def query(self, **kwargs: Any) -> list[dict[str, Any]]:
        self._check()
        return await self.inner.query(**kwargs)

    async def spend(
        self, *, key_id: str | None = None, team: str | None = None, since: datetime
    ) -> Decimal:
        self._check()
        return await self.inner.spend(key_id=key_id, team=team, since=since)


def usage_of(index: int) -> dict[str, int]:
    return {"inputTokens": 20 + index, "outputTokens": 1 + index % 5}


def bodies(indexes: range) -> list[dict[str, Any]]:
    return [chat(f"n{i}", stream=i % 2 == 1, usage=usage_of(i)) for i in indexes]


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def spilled_lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def readiness(gateway: RunningGateway) -> int:
    with gateway.http() as http:
        return http.get("/readyz").status_code


def assert_exact(rows: dict[str, dict[str, Any]], count: int) -> None:
    assert sorted(rows) == sorted(f"fault-{i}" for i in range(count))
    for index in range(count):
        row = rows[f"fault-{index}"]
        expected = usage_of(index)
        assert (row["status"], row["estimated"]) == (200, 0)
        assert (row["input_tokens"], row["output_tokens"]) == (
            expected["inputTokens"],
            expected["outputTokens"],
        )


def test_ledger_outage_then_recovery(
    launch: Launch, recovery: Recovery, tmp_path: Path, fault_emulator: ServerThread
) -> None:
    store = FlakyStore(open_store(f"sqlite:///{tmp_path / 'usage.db'}"))
    gateway = launch(store=store)
    spill = Path(str(gateway.config.usage.spill_path))
    recorder = gateway.app.state.gateway.recorder
    with recovery(gateway):
        store.down = True
        outcomes = fire(gateway, bodies(range(100)), concurrency=25)
        # The ledger is down; the answers are not.
        assert all(outcome.status == 200 for outcome in outcomes)
        assert readiness(gateway) == 503
        wait_for(lambda: spilled_lines(spill) > 0, "records to reach the spill file")
        assert metric(gateway, "gateway_usage_queue_depth") >= 100

        store.down = False
        wait_for(lambda: metric(gateway, "gateway_usage_queue_depth") == 0, "the backlog")
        assert readiness(gateway) == 200
        assert spilled_lines(spill) == 0  # replayed, then emptied

        # A write whose COMMIT went through but whose answer was lost: written again.
        store.commit_then_fail = 1
        drain_pool(fault_emulator)
        more = fire(gateway, bodies(range(100, 150)), concurrency=25, first=100)
        assert [o.status for o in more] == [200] * 50, [o.body for o in more if o.status != 200]
        wait_for(lambda: store.commit_then_fail == 0, "the ambiguous write")
        wait_for(lambda: metric(gateway, "gateway_usage_queue_depth") == 0, "the retry")
    assert store.failed_writes >= 2
    assert recorder.lost == 0
    assert_exact(by_request(ledger(gateway)), 150)


def test_records_spilled_at_shutdown_reach_the_ledger_at_the_next_start(
    launch: Launch, recovery: Recovery, tmp_path: Path
) -> None:
    store = FlakyStore(open_store(f"sqlite:///{tmp_path / 'usage.db'}"))
    gateway = launch(store=store)
    spill = Path(str(gateway.config.usage.spill_path))
    with recovery(gateway):
        store.down = True
        outcomes = fire(gateway, bodies(range(60)), concurrency=25)
        assert all(outcome.status == 200 for outcome in outcomes)
    gateway.server.stop()  # the store is still down at shutdown: all of it goes to disk
    assert gateway.app.state.gateway.recorder.lost == 0
    assert spilled_lines(spill) >= 60

    # The next process on the same ledger and spill file replays what it finds.
    successor = launch()
    wait_for(lambda: spilled_lines(spill) == 0, "the spill file to be replayed")
    assert_exact(by_request(ledger(successor)), 60)
