"""The spill file on its own: encoding, claiming, adopting orphans, damage, paging."""

from __future__ import annotations

import errno
import os
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.usage.spill import SpillFile, decode_record, encode_record
from tests.usage.helpers import make_record


def test_records_round_trip_exactly() -> None:
    record = make_record(
        ts=datetime(2026, 11, 21, 10, 58, 8, 123456, tzinfo=timezone(timedelta(hours=2))),
        end_user="émilie",
        stream=True,
        cost_usd=Decimal("0.0000000001"),
        ttft_ms=81.25,
        estimated=True,
        error_type="ModelTimeoutException",
    )
    line = encode_record(record)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_record(line) == record
    assert decode_record(encode_record(make_record(cost_usd=None))).cost_usd is None


@pytest.mark.parametrize("line", [b"[]", b"{}", b'{"id": "x"}', b"not json"])
def test_damaged_lines_raise(line: bytes) -> None:
    with pytest.raises((ValueError, KeyError)):
        decode_record(line)


def test_each_process_claims_its_own_file(tmp_path: Path) -> None:
    base = tmp_path / "usage.spill.jsonl"
    first = SpillFile.claim(base)
    second = SpillFile.claim(base)
    try:
        assert first.path == base
        assert second.path == tmp_path / "usage.spill.jsonl.1"
        first.append([make_record()])
        # A held file is never adopted, even with records in it.
        third = SpillFile.claim(base)
        assert third.path == tmp_path / "usage.spill.jsonl.2"
        third.close()
        assert first.count() == 1
    finally:
        first.close()
        second.close()
    assert base.exists()  # it still holds a record
    assert not (tmp_path / "usage.spill.jsonl.1").exists()  # empty files are removed


def test_orphans_are_adopted(tmp_path: Path) -> None:
    base = tmp_path / "usage.spill.jsonl"
    own, orphan = [make_record()], [make_record(), make_record()]
    base.write_bytes(b"".join(encode_record(r) for r in own))
    # An orphan of a larger fleet, ending in a half-written line.
    (tmp_path / "usage.spill.jsonl.3").write_bytes(
        b"".join(encode_record(r) for r in orphan) + b'{"id": "half'
    )
    (tmp_path / "unrelated.jsonl").write_bytes(b"keep me\n")
    spill = SpillFile.claim(base)
    try:
        assert spill.path == base
        records, _, damaged = spill.read(0, 100)
        assert records == own + orphan
        assert damaged == 1
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "unrelated.jsonl",
            "usage.spill.jsonl",
        ]
    finally:
        spill.close()


def test_a_torn_last_line_does_not_spoil_the_next_record(tmp_path: Path) -> None:
    base = tmp_path / "s.jsonl"
    kept = make_record()
    base.write_bytes(encode_record(kept) + b'{"id": "torn", "ts"')
    spill = SpillFile.claim(base)
    try:
        later = make_record()
        spill.append([later])
        assert spill.count() == 3
        records, _, damaged = spill.read(0, 10)
        assert records == [kept, later]
        assert damaged == 1
    finally:
        spill.close()


def test_reading_pages_through_by_offset(tmp_path: Path) -> None:
    spill = SpillFile.claim(tmp_path / "s.jsonl")
    try:
        records = [make_record() for _ in range(25)]
        spill.append(records[:13])
        spill.append(records[13:])
        seen = []
        offset = 0
        for expected in (10, 10, 5):
            page, offset, damaged = spill.read(offset, 10)
            assert len(page) == expected and damaged == 0
            seen += page
        assert seen == records
        assert spill.read(offset, 10) == ([], offset, 0)
        assert offset == spill.size()
        spill.truncate()
        assert spill.size() == 0 and spill.count() == 0
    finally:
        spill.close()


def test_a_failed_append_leaves_no_partial_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spill = SpillFile.claim(tmp_path / "s.jsonl")
    try:
        spill.append([make_record()])
        size = spill.size()
        real_write = os.write

        def disk_full_halfway(fd: int, data: Any) -> int:
            real_write(fd, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "write", disk_full_halfway)
        with pytest.raises(OSError):
            spill.append([make_record(), make_record()])
        monkeypatch.undo()
        assert spill.size() == size
        spill.append([make_record()])
        records, _, damaged = spill.read(0, 10)
        assert len(records) == 2 and damaged == 0
    finally:
        spill.close()


def test_record_fields_are_exactly_the_dataclass_fields() -> None:
    from dataclasses import fields

    from gateway.usage.record import RECORD_FIELDS, UsageRecord

    assert sorted(f.name for f in fields(UsageRecord) if f.name != "extra") == sorted(RECORD_FIELDS)
    assert len(set(RECORD_FIELDS)) == len(RECORD_FIELDS)


def test_a_lone_surrogate_is_spilled_and_read_back() -> None:
    from datetime import UTC, datetime

    from gateway.usage.record import UsageRecord
    from gateway.usage.spill import decode_record, encode_record

    record = UsageRecord(
        id="r1",
        ts=datetime(2026, 1, 2, tzinfo=UTC),
        request_id="q",
        route="/v1/chat/completions",
        end_user="x\ud800y",
    )
    line = encode_record(record)
    assert decode_record(line).end_user == "x\ud800y"


def test_a_line_spilled_before_the_tier_fields_still_replays() -> None:
    import json

    record = make_record(service_tier="flex", cache_write_1h_tokens=4, cache_write_tokens=9)
    assert decode_record(encode_record(record)) == record
    old = json.loads(encode_record(record))
    del old["service_tier"], old["cache_write_1h_tokens"]
    replayed = decode_record(json.dumps(old).encode())
    assert replayed.service_tier is None and replayed.cache_write_1h_tokens == 0
    assert replayed.cache_write_tokens == 9


def test_a_line_spilled_before_region_and_guardrail_still_replays() -> None:
    import json

    record = make_record(region="us-west-2", guardrail_id="abc123def456")
    assert decode_record(encode_record(record)) == record
    old = json.loads(encode_record(record))
    del old["region"], old["guardrail_id"]
    replayed = decode_record(json.dumps(old).encode())
    assert replayed.region is None and replayed.guardrail_id is None
