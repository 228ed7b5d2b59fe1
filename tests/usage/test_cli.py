"""`bedrock-gateway usage` reading a real SQLite store."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path

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
