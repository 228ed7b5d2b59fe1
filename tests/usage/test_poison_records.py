"""Issue 19, item 1: one bad caller string must never jam the ledger.

A `user` of "x\\u0000" or 4,000 characters made PostgreSQL refuse the whole batch, which the
recorder then retried (and replayed from the spill file) for ever. Each layer is tested:
the validator the pipeline calls, the stores' cleaning of every row (SQLite and the real
PostgreSQL), and the recorder's per-row isolation with its dead-letter file, metric and log
line, including a poisoned spill file left by an earlier run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.errors import InvalidRequestError
from gateway.server import probes as health
from gateway.usage import postgres
from gateway.usage.clean import (
    LEDGER_TEXT_MAX_CHARS,
    clean_row_text,
    clean_values,
    ledger_text,
    validate_end_user,
)
from gateway.usage.dead_letter import dead_letter_path
from gateway.usage.record import UsageRecord
from gateway.usage.recorder import UsageRecorder
from gateway.usage.spill import encode_record
from tests.usage.conftest import Backend
from tests.usage.helpers import eventually, make_record
from tests.usage.test_recorder import FakeStore

NUL_USER = "x\u0000"
LONG_USER = "u" * 4000


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("alice", "alice"),
        (NUL_USER, "x"),
        ("a\x1b[31mred\r\nb\x7f\x85", "a[31mredb"),
        ("lone\ud800surrogate", "lonesurrogate"),
        (LONG_USER, "u" * LEDGER_TEXT_MAX_CHARS),
        ("ünïcødé ✓", "ünïcødé ✓"),
    ],
)
def test_ledger_text_removes_unstorable_characters_and_caps(
    value: str | None, expected: str | None
) -> None:
    assert ledger_text(value) == expected


class _Text(str):
    """A str subclass: cleaned like any str."""


@pytest.mark.parametrize(
    "bad",
    [NUL_USER, LONG_USER, "lone\ud800", "tab\there", "c1\x85", _Text("sub\x00class")],
)
@pytest.mark.parametrize("at", [0, 3, 5])
def test_a_row_is_cleaned_whichever_column_holds_the_one_bad_text(bad: str, at: int) -> None:
    # The rows of well-behaved callers take a fast path (one check for all columns): a
    # single bad text anywhere, of either kind, must still send the row the slow way.
    values: list[Any] = ["id", None, "req", "key", 7, "user", True, None]
    values[at] = bad
    expected = [ledger_text(v) if isinstance(v, str) else v for v in values]
    assert expected[at] != bad
    assert clean_values(list(values)) == expected
    row = {f"c{i}": value for i, value in enumerate(values)}
    assert list(clean_row_text(row).values()) == expected


def test_clean_rows_are_left_as_they_are() -> None:
    values: list[Any] = ["id", None, "Zoë ✓", "u" * LEDGER_TEXT_MAX_CHARS, 3, 1.5]
    assert clean_values(list(values)) == values
    assert clean_values([]) == []


@pytest.mark.parametrize(
    "value", [NUL_USER, "a\nb", "\x1b[2J", "tab\there", "x\ud800", "u" * 257, 42, ["a"]]
)
def test_the_user_validator_refuses_with_400_naming_user(value: object) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        validate_end_user(value)
    assert caught.value.status == 400 and caught.value.param == "user"


@pytest.mark.parametrize("value", [None, "alice", "u" * 256, "Zoë ✓ <x@y>"])
def test_the_user_validator_lets_ordinary_ids_through(value: str | None) -> None:
    assert validate_end_user(value) == value


async def test_every_store_takes_poisoned_text_cleaned_and_capped(backend: Backend) -> None:
    store = await backend.open()
    bad = make_record(
        end_user=NUL_USER,
        user=LONG_USER,
        model="m\x00" + "o" * 5000,
        request_id="r\ud800" + "q" * 3000,
        error_type="E\x1b]8;;x",
    )
    good = make_record()
    await store.write([bad, good])
    row = await backend.raw_row(bad.id)
    assert row["end_user"] == "x"
    assert row["user"] == "u" * LEDGER_TEXT_MAX_CHARS
    assert row["model"] == ("m" + "o" * 5000)[:LEDGER_TEXT_MAX_CHARS]
    assert row["request_id"] == ("r" + "q" * 3000)[:LEDGER_TEXT_MAX_CHARS]
    assert row["error_type"] == "E]8;;x"
    (total,) = await store.query(group_by=[])
    assert total["requests"] == 2
    by_user = await store.query(group_by=["end_user"])
    assert [r["end_user"] for r in by_user] == ["x", None]


class PickyStore(FakeStore):
    """Answers pings and takes every record except those whose end_user it refuses."""

    def __init__(self, refuse: str) -> None:
        super().__init__()
        self.refuse = refuse
        self.refusals = 0

    async def write(self, records: Sequence[UsageRecord]) -> None:
        if any(record.end_user == self.refuse for record in records):
            self.attempts += 1
            self.refusals += 1
            raise ValueError("invalid byte sequence for encoding UTF8: 0x00")
        await super().write(records)


def _recorder(store: Any, tmp_path: Path, dead: list[int], **options: Any) -> UsageRecorder:
    return UsageRecorder(
        store,
        flush_interval_ms=10,
        batch_size=10,
        max_buffer=1000,
        retry_min_s=0.01,
        retry_max_s=0.04,
        close_timeout_s=2.0,
        spill_path=tmp_path / "spill.jsonl",
        dead_letter_path=dead_letter_path(tmp_path / "spill.jsonl"),
        on_dead_letter=dead.append,
        **options,
    )


def _dead_lines(tmp_path: Path) -> list[dict[str, Any]]:
    path = dead_letter_path(tmp_path / "spill.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_a_refused_record_is_set_aside_and_the_rest_reach_the_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = PickyStore(refuse=NUL_USER)
    dead: list[int] = []
    recorder = _recorder(store, tmp_path, dead)
    await recorder.start()
    poison = make_record(end_user=NUL_USER)
    others = [make_record() for _ in range(29)]
    with caplog.at_level(logging.ERROR, logger="gateway.usage"):
        recorder.submit(poison)
        for record in others:
            recorder.submit(record)
        await eventually(lambda: store.count == 29, what="the others written")
        await eventually(lambda: recorder.depth == 0, what="the queue drained")
    assert store.written == Counter(r.id for r in others)
    assert dead == [1] and recorder.dead_lettered == 1
    assert store.refusals == 3  # the batch, then the row alone twice: bounded
    (line,) = _dead_lines(tmp_path)
    assert line["record"]["id"] == poison.id and line["record"]["end_user"] == NUL_USER
    assert "0x00" in line["error"]
    assert any(
        poison.id in r.getMessage() and "set aside" in r.getMessage() for r in caplog.records
    )
    await recorder.aclose()
    assert recorder.lost == 0


async def test_a_poisoned_spill_file_from_an_earlier_run_is_replayed_past_the_poison(
    tmp_path: Path,
) -> None:
    poison = make_record(end_user=NUL_USER)
    others = [make_record() for _ in range(15)]
    (tmp_path / "spill.jsonl").write_bytes(
        b"".join(encode_record(r) for r in [others[0], poison, *others[1:]])
    )
    store = PickyStore(refuse=NUL_USER)
    dead: list[int] = []
    recorder = _recorder(store, tmp_path, dead)
    await recorder.start()
    await eventually(lambda: store.count == 15 and recorder.depth == 0, what="replay done")
    assert dead == [1]
    await recorder.aclose()
    assert not (tmp_path / "spill.jsonl").exists()  # replayed and removed


async def test_an_outage_is_not_mistaken_for_bad_rows(tmp_path: Path) -> None:
    store = FakeStore()
    store.broken = True  # ping fails too: nothing may be dead-lettered
    dead: list[int] = []
    recorder = _recorder(store, tmp_path, dead)
    await recorder.start()
    for _ in range(12):
        recorder.submit(make_record())
    await eventually(lambda: store.attempts >= 3, what="retries")
    assert dead == [] and store.count == 0
    store.broken = False
    await eventually(lambda: store.count == 12, what="written after the outage")
    await recorder.aclose()
    assert dead == []


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_the_real_postgres_refusing_a_row_blocks_nothing(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the stores' cleaning (the first layer), PostgreSQL refuses the NUL itself:
    # this is the refusal of the issue, and the recorder must isolate it.
    monkeypatch.setattr(postgres, "clean_row_text", lambda row: row)
    store = await backend.open()
    dead: list[int] = []
    recorder = _recorder(store, tmp_path, dead)
    await recorder.start()
    poison = make_record(end_user=NUL_USER)
    others = [make_record(end_user=f"team-b-{i}") for i in range(25)]
    recorder.submit(poison)
    for record in others:
        recorder.submit(record)
    await eventually(lambda: recorder.depth == 0, within_s=20, what="the ledger drained")
    (total,) = await store.query(group_by=[])
    assert total["requests"] == 25
    assert dead == [1]
    assert _dead_lines(tmp_path)[0]["record"]["id"] == poison.id
    await recorder.aclose()


async def test_the_recorder_through_a_real_store_records_a_nul_user(
    backend: Backend, tmp_path: Path
) -> None:
    # The symptom end to end at the recorder: before the fix this never drained on
    # PostgreSQL, and budgets stopped advancing.
    store = await backend.open()
    dead: list[int] = []
    recorder = _recorder(store, tmp_path, dead)
    await recorder.start()
    for user in (NUL_USER, LONG_USER, "ok"):
        recorder.submit(make_record(end_user=user))
    await eventually(lambda: recorder.depth == 0, within_s=10, what="the ledger drained")
    rows = await store.query(group_by=["end_user"])
    assert sorted(r["end_user"] for r in rows) == sorted(["x", "u" * 256, "ok"])
    assert dead == []
    await recorder.aclose()


async def test_readyz_says_when_the_ledger_is_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class SlowStore(FakeStore):
        async def write(self, records: Sequence[UsageRecord]) -> None:
            raise TimeoutError("the store takes nothing")  # yet it answers pings

    store = SlowStore()
    recorder = _recorder(store, tmp_path, [])
    await recorder.start()
    request: Any = SimpleNamespace(
        app=SimpleNamespace(
            state=SimpleNamespace(gateway=SimpleNamespace(ready=True, recorder=recorder))
        )
    )
    assert (await health.readyz(request)).status_code == 200
    monkeypatch.setattr(health, "LEDGER_BEHIND_S", 0.2)
    recorder.submit(make_record())
    assert (await health.readyz(request)).status_code == 200  # just submitted: not behind
    await asyncio.sleep(0.3)
    response = await health.readyz(request)
    assert response.status_code == 503
    body = json.loads(bytes(response.body))
    assert body["status"] == "usage ledger behind" and body["usage_queue_depth"] == 1
    await recorder.aclose()


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    "error",
    [
        _DriverError("53100"),  # PostgreSQL disk_full
        _DriverError("57P01"),  # admin_shutdown
        _DriverError("40001"),  # serialization_failure
        sqlite3.OperationalError("database or disk is full"),
    ],
)
async def test_a_store_unwell_while_it_answers_pings_sets_nothing_aside(
    tmp_path: Path, error: Exception
) -> None:
    class UnwellStore(FakeStore):
        def __init__(self) -> None:
            super().__init__()
            self.unwell = True

        async def write(self, records: Sequence[UsageRecord]) -> None:
            if self.unwell:
                self.attempts += 1
                raise error
            await super().write(records)

    store = UnwellStore()
    dead: list[int] = []
    recorder = _recorder(store, tmp_path, dead)
    await recorder.start()
    for _ in range(12):
        recorder.submit(make_record())
    await eventually(lambda: store.attempts >= 3, what="retries")
    assert dead == [] and store.count == 0
    store.unwell = False
    await eventually(lambda: store.count == 12, what="written once the store is well")
    await recorder.aclose()
    assert dead == []


@pytest.mark.parametrize("sqlstate", ["22021", "22P05", "54000"])
async def test_data_errors_are_set_aside(tmp_path: Path, sqlstate: str) -> None:
    class Refusing(PickyStore):
        async def write(self, records: Sequence[UsageRecord]) -> None:
            if any(record.end_user == self.refuse for record in records):
                raise _DriverError(sqlstate)
            await FakeStore.write(self, records)

    store = Refusing(refuse="bad")
    dead: list[int] = []
    recorder = _recorder(store, tmp_path, dead)
    await recorder.start()
    recorder.submit(make_record(end_user="bad"))
    for _ in range(5):
        recorder.submit(make_record())
    await eventually(lambda: store.count == 5 and recorder.depth == 0, what="drained")
    assert dead == [1]
    await recorder.aclose()


async def test_the_lag_is_reported_each_tick_while_the_ledger_is_stalled(tmp_path: Path) -> None:
    class StalledStore(FakeStore):
        async def write(self, records: Sequence[UsageRecord]) -> None:
            raise TimeoutError("the store takes nothing")

    lags: list[float] = []
    recorder = _recorder(StalledStore(), tmp_path, [], on_lag=lags.append)
    await recorder.start()
    await eventually(lambda: len(lags) >= 2, what="ticks")
    assert set(lags) == {0.0}  # nothing waits: no lag
    recorder.submit(make_record())
    await eventually(lambda: lags[-1] >= 0.1, what="a growing lag")
    await recorder.aclose()
