"""`bedrock-gateway usage` reading a real SQLite store."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.config import GatewayConfig
from gateway.usage.cli import run_usage_report
from gateway.usage.sqlite import SQLiteUsageStore
from tests.usage.helpers import make_record


def _config(path: Path) -> GatewayConfig:
    return GatewayConfig.model_validate({"usage": {"store": f"sqlite:///{path}"}})


async def test_report_from_the_store(tmp_path: Path) -> None:
    db = tmp_path / "usage.db"  # absolute: sqlite:////tmp/...
    store = SQLiteUsageStore(db)
    await store.open()
    await store.write(
        [
            make_record(team="search", cost_usd=Decimal("0.001")),
            make_record(team="search", cost_usd=Decimal("0.002")),
            make_record(team="ads", cost_usd=Decimal("0.5")),
        ]
    )
    await store.close()
    out, err = io.StringIO(), io.StringIO()
    status = await run_usage_report(
        _config(db),
        group_by="team",
        since="2026-11-01",
        until="2026-12-01",
        output_format="json",
        stdout=out,
        stderr=err,
    )
    assert (status, err.getvalue()) == (0, "")
    data = json.loads(out.getvalue(), parse_float=Decimal)
    assert data["start"] == "2026-11-01T00:00:00Z"
    assert [(row["team"], row["requests"], row["cost_usd"]) for row in data["data"]] == [
        ("ads", 1, Decimal("0.5")),
        ("search", 2, Decimal("0.003")),
    ]


async def test_bad_arguments_exit_2_with_the_option_named(tmp_path: Path) -> None:
    err = io.StringIO()
    status = await run_usage_report(
        _config(tmp_path / "usage.db"),
        group_by="team,colour",
        since=None,
        until=None,
        output_format="table",
        stdout=io.StringIO(),
        stderr=err,
    )
    assert status == 2
    assert err.getvalue().startswith("error: --group-by: ")


async def test_a_missing_sqlite_store_is_not_created(tmp_path: Path) -> None:
    db = tmp_path / "nowhere" / "usage.db"
    err = io.StringIO()
    status = await run_usage_report(
        _config(db),
        group_by=None,
        since=None,
        until=None,
        output_format=None,
        stdout=io.StringIO(),
        stderr=err,
    )
    assert status == 1
    assert "no usage store" in err.getvalue()
    assert not db.parent.exists()


async def test_an_unreachable_postgres_is_one_line_without_the_password() -> None:
    config = GatewayConfig.model_validate(
        {"usage": {"store": "postgresql://gw:s3cret@127.0.0.1:1/usage"}}
    )
    err = io.StringIO()
    status = await run_usage_report(
        config,
        group_by=None,
        since=None,
        until=None,
        output_format="csv",
        stdout=io.StringIO(),
        stderr=err,
    )
    assert status == 1
    assert err.getvalue().count("\n") == 1
    assert "s3cret" not in err.getvalue()
    assert "gw:***@127.0.0.1:1" in err.getvalue()


async def test_caller_text_is_inert_in_csv_and_table(tmp_path: Path) -> None:
    # Issue 19, items 5 and 8: formula cells and terminal escapes from a `user`.
    db = tmp_path / "usage.db"
    store = SQLiteUsageStore(db)
    await store.open()
    await store.write(
        [
            make_record(end_user='=HYPERLINK("http://evil","x")'),
            make_record(end_user="ok\x1b[2J\rforged  row\n9  9"),
            make_record(end_user="-"),
            make_record(end_user=None),
        ]
    )
    await store.close()

    async def report(fmt: str) -> str:
        out, err = io.StringIO(), io.StringIO()
        status = await run_usage_report(
            _config(db),
            group_by="end_user",
            since=None,
            until=None,
            output_format=fmt,
            stdout=out,
            stderr=err,
        )
        assert (status, err.getvalue()) == (0, "")
        return out.getvalue()

    cells = [row[0] for row in csv.reader(io.StringIO(await report("csv")))][1:]
    assert '\'=HYPERLINK("http://evil","x")' in cells and "'-" in cells
    table = await report("table")
    assert "\x1b" not in table and "\r" not in table  # the store cleaned them on the way in
    assert len(table.splitlines()) == 2 + 4  # header, rule, four rows: nothing forged
    first_cells = [line.split("  ", 1)[0].strip() for line in table.splitlines()[2:]]
    assert "-" in first_cells and "(null)" in first_cells  # null is not "-"


@pytest.mark.parametrize(
    ("since", "until", "named"),
    [
        ("9999-12-31T23:59:59-14:00", None, "--since"),
        (None, "0001-01-01T00:00:00+01:00", "--until"),
    ],
)
async def test_times_outside_the_calendar_exit_2_naming_the_option(
    tmp_path: Path, since: str | None, until: str | None, named: str
) -> None:
    # Issue 19, item 10: this was a traceback.
    out, err = io.StringIO(), io.StringIO()
    status = await run_usage_report(
        _config(tmp_path / "u.db"),
        group_by="team",
        since=since,
        until=until,
        output_format="table",
        stdout=out,
        stderr=err,
    )
    assert status == 2 and err.getvalue().startswith(f"error: {named}:")


def test_the_table_escapes_control_characters_already_in_a_ledger() -> None:
    # Rows stored before the stores cleaned text can still hold them: escaped on output.
    from gateway.usage.report import UsageReport, render_table

    rows = [
        {"end_user": "ok\x1b[2J\rforged\n9", "requests": 1, "cost_usd": None},
        {"end_user": "bidi\u202eevil", "requests": 1, "cost_usd": None},
        {"end_user": "(null)", "requests": 1, "cost_usd": None},
    ]
    table = render_table(UsageReport(group_by=("end_user",), start=None, end=None, rows=rows))
    assert "\x1b" not in table and "\r" not in table and "\u202e" not in table
    assert len(table.splitlines()) == 2 + 3
    assert "ok\\x1b[2J\\x0dforged\\x0a9" in table and "bidi\\u202eevil" in table
    assert "'(null)'" in table  # a value that looks like the null marker is quoted


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_csv_prefixes_every_formula_start(cell: str) -> None:
    from gateway.usage.report import UsageReport, render_csv

    rows = [{"user": cell, "requests": 1, "cost_usd": None}]
    text = render_csv(UsageReport(group_by=("user",), start=None, end=None, rows=rows))
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert row["user"] == "'" + cell and row["requests"] == "1"
