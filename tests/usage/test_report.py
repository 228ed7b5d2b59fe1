"""Report parameters and the three renderings shared by /v1/usage and the CLI."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from gateway.usage.report import (
    UsageReport,
    parse_format,
    parse_group_by,
    parse_range,
    parse_time,
    render,
    render_csv,
    render_json,
    render_table,
)

ROWS: list[dict[str, Any]] = [
    {
        "team": "search",
        "model": "claude-3-5-sonnet",
        "requests": 12,
        "input_tokens": 340,
        "output_tokens": 120,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0,
        "cost_usd": Decimal("0.0028200000"),
    },
    {
        "team": None,
        "model": 'mystery, "quoted"',
        "requests": 1,
        "input_tokens": 1234567,
        "output_tokens": 0,
        "cache_read_tokens": 5,
        "cache_write_tokens": 7,
        "cache_write_1h_tokens": 3,
        "cost_usd": None,
    },
    {
        "team": "ads",
        "model": "nova-micro",
        "requests": 3,
        "input_tokens": 1,
        "output_tokens": 1,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0,
        "cost_usd": Decimal("0.0000000001"),
    },
]
REPORT = UsageReport(
    group_by=("team", "model"),
    start=datetime(2026, 11, 1, tzinfo=UTC),
    end=None,
    rows=ROWS,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ()),
        ("", ()),
        ("team", ("team",)),
        ("team,model", ("team", "model")),
        (" day , key_id ", ("day", "key_id")),
        ("user,end_user", ("user", "end_user")),
    ],
)
def test_parse_group_by(value: str | None, expected: tuple[str, ...]) -> None:
    assert parse_group_by(value) == expected


@pytest.mark.parametrize("value", ["team,,model", "team,team", "cost_usd", "team;drop", "Team"])
def test_parse_group_by_errors_name_the_parameter(value: str) -> None:
    with pytest.raises(ValueError, match=r"^--group-by: "):
        parse_group_by(value, param="--group-by")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T08:30:00", datetime(2026, 11, 1, 8, 30, tzinfo=UTC)),
        ("2026-11-01T08:30:00Z", datetime(2026, 11, 1, 8, 30, tzinfo=UTC)),
        ("2026-11-01T08:30:00+02:00", datetime(2026, 11, 1, 6, 30, tzinfo=UTC)),
        ("2026-11-01T08:30:00.250-05:00", datetime(2026, 11, 1, 13, 30, 0, 250000, tzinfo=UTC)),
        (None, None),
        ("  ", None),
    ],
)
def test_parse_time(value: str | None, expected: datetime | None) -> None:
    parsed = parse_time(value, param="start")
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is UTC


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "2026-11-01T25:00", "1700000000"])
def test_parse_time_errors_name_the_parameter(value: str) -> None:
    with pytest.raises(ValueError, match=r"^end: .*ISO 8601"):
        parse_time(value, param="end")


def test_parse_range() -> None:
    assert parse_range("2026-11-01", "2026-12-01") == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert parse_range(None, None) == (None, None)
    with pytest.raises(ValueError, match=r"^--since: must be before --until"):
        parse_range("2026-12-01", "2026-11-01", start_param="--since", end_param="--until")
    with pytest.raises(ValueError, match=r"^start: "):
        parse_range("2026-11-01", "2026-11-01")


def test_parse_format() -> None:
    assert parse_format(None) == "json"
    assert parse_format("CSV") == "csv"
    assert parse_format(None, default="table") == "table"
    with pytest.raises(ValueError, match=r"^format: 'xml' is not one of json, csv, table"):
        parse_format("xml")


def test_json_has_the_contract_shape_and_exact_costs() -> None:
    text = render_json(REPORT)
    data = json.loads(text, parse_float=Decimal)
    assert data == {
        "object": "list",
        "group_by": ["team", "model"],
        "start": "2026-11-01T00:00:00Z",
        "end": None,
        "data": ROWS,
    }
    assert list(data["data"][0]) == [
        "team",
        "model",
        "requests",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cache_write_1h_tokens",
        "cost_usd",
    ]
    # Numbers, not strings, and every digit: no float ever stood in between.
    assert '"cost_usd":0.00282}' in text
    assert '"cost_usd":0.0000000001}' in text
    assert '"cost_usd":null}' in text
    assert isinstance(json.loads(text)["data"][0]["cost_usd"], float)


def test_json_of_an_empty_report() -> None:
    empty = UsageReport(group_by=(), start=None, end=None, rows=[])
    assert json.loads(render(empty, "json")) == {
        "object": "list",
        "group_by": [],
        "start": None,
        "end": None,
        "data": [],
    }


def test_csv_has_a_header_and_fixed_column_order() -> None:
    text = render_csv(REPORT)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [
        ["team", "model", "requests", "input_tokens", "output_tokens",
         "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "cost_usd"],
        ["search", "claude-3-5-sonnet", "12", "340", "120", "0", "0", "0", "0.00282"],
        ["", 'mystery, "quoted"', "1", "1234567", "0", "5", "7", "3", ""],
        ["ads", "nova-micro", "3", "1", "1", "0", "0", "0", "0.0000000001"],
    ]  # fmt: skip


def test_table_is_aligned() -> None:
    lines = render_table(REPORT).splitlines()
    assert lines[0].split() == list(REPORT.columns)
    assert set(lines[1]) == {"-", " "}
    assert lines[2].split()[:2] == ["search", "claude-3-5-sonnet"]
    assert lines[3].startswith("(null)  ")  # a missing team: not "-", a team may be named that
    # Numbers end at the right edge of their column, text starts at the left of its own.
    requests_end = lines[0].index("requests") + len("requests")
    assert [line[requests_end - 2 : requests_end] for line in lines[2:]] == ["12", " 1", " 3"]
    model_start = lines[0].index("model")
    assert lines[4][model_start:].startswith("nova-micro")
    assert lines[2].endswith("0.00282") and lines[3].endswith("(null)")


def test_table_of_nothing_says_so() -> None:
    empty = UsageReport(group_by=("team",), start=None, end=None, rows=[])
    assert render(empty, "table").splitlines()[-1] == "(no usage in this range)"
