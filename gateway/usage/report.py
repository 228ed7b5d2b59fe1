"""Usage reports: what `GET /v1/usage` and `bedrock-gateway usage` share.

Both take the same inputs (a comma list of group fields, an optional time range) and
print the same rows, so parsing and rendering live here once and the HTTP handler and
the CLI only map their own parameter names onto it. Every parsing error is a
`ValueError` whose message starts with the parameter's name, ready to be returned as a
400 with `param` set, or printed by the CLI.

Times are ISO 8601, a date (`2026-11-01`, midnight UTC) or a date-time; a value without
a zone is UTC. The range is half-open, `start <= ts < end`, so consecutive months never
count a request twice: November is `start=2026-11-01&end=2026-12-01`.

Costs are rendered from their exact `Decimal`, never through a float: JSON gets a number
literal with every digit the store holds, CSV and the table the same digits as text.
A group in which no request had a known price has a `null` cost (empty in CSV, `-` in the
table), which is not the same as zero.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from gateway.usage.money import as_utc
from gateway.usage.store import METRIC_FIELDS, validate_group_by

__all__ = [
    "CONTENT_TYPES",
    "FORMATS",
    "UsageReport",
    "parse_format",
    "parse_group_by",
    "parse_range",
    "parse_time",
    "render",
    "render_csv",
    "render_json",
    "render_table",
]

Format = Literal["json", "csv", "table"]
FORMATS: tuple[Format, ...] = ("json", "csv", "table")
CONTENT_TYPES: Mapping[Format, str] = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "table": "text/plain; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Aggregate rows from `UsageStore.query` with the parameters that produced them."""

    group_by: tuple[str, ...]
    start: datetime | None
    end: datetime | None
    rows: Sequence[Mapping[str, Any]]

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.group_by, *METRIC_FIELDS)


def parse_group_by(value: str | None, *, param: str = "group_by") -> tuple[str, ...]:
    """`"team,model"` -> `("team", "model")`; empty or missing means one total row."""
    if value is None or not value.strip():
        return ()
    names = [name.strip() for name in value.split(",")]
    if not all(names):
        raise ValueError(f"{param}: empty field name in {value!r}")
    try:
        return validate_group_by(names)
    except ValueError as exc:
        raise ValueError(f"{param}: {exc}") from None


def parse_time(value: str | None, *, param: str) -> datetime | None:
    """An ISO 8601 date or date-time as an aware UTC datetime; None if not given."""
    if value is None or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"{param}: {value!r} is not an ISO 8601 date (2026-11-01) "
            "or date-time (2026-11-01T08:00:00Z)"
        ) from None
    return as_utc(parsed)


def parse_range(
    start: str | None,
    end: str | None,
    *,
    start_param: str = "start",
    end_param: str = "end",
) -> tuple[datetime | None, datetime | None]:
    """Both ends of a report's time range; `start` must come before `end`."""
    since = parse_time(start, param=start_param)
    until = parse_time(end, param=end_param)
    if since is not None and until is not None and since >= until:
        raise ValueError(f"{start_param}: must be before {end_param}")
    return since, until


def parse_format(value: str | None, *, param: str = "format", default: Format = "json") -> Format:
    if value is None or not value.strip():
        return default
    for name in FORMATS:
        if value.strip().lower() == name:
            return name
    raise ValueError(f"{param}: {value!r} is not one of {', '.join(FORMATS)}")


def render(report: UsageReport, fmt: Format) -> str:
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report)
    return render_table(report)


def render_json(report: UsageReport) -> str:
    """The contract's object: `{"object": "list", "group_by", "start", "end", "data"}`."""
    # json.dumps cannot write a Decimal without a float in between, so the document is
    # assembled from literals, each one produced by json.dumps except the exact costs.
    top: dict[str, Any] = {
        "object": "list",
        "group_by": list(report.group_by),
        "start": _iso(report.start),
        "end": _iso(report.end),
        "data": [{c: row.get(c) for c in report.columns} for row in report.rows],
    }
    return _json_value(top)


def render_csv(report: UsageReport) -> str:
    """A header row, then one line per group, columns in `UsageReport.columns` order."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(report.columns)
    for row in report.rows:
        writer.writerow(_csv_cell(row.get(c), metric=c in METRIC_FIELDS) for c in report.columns)
    return out.getvalue()


# A spreadsheet runs a cell starting with one of these as a formula (CSV injection, OWASP):
# a caller chooses its own `user` field and key ids, so text cells are defused with a `'`.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any, *, metric: bool) -> str:
    text = _text(value, none="")
    if not metric and text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def render_table(report: UsageReport) -> str:
    """Aligned columns for a terminal: text to the left, numbers to the right."""
    header = list(report.columns)
    body = [[_text(row.get(c), none="-") for c in header] for row in report.rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    numeric = [name in METRIC_FIELDS for name in header]

    def line(cells: Sequence[str]) -> str:
        parts = (
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(cells, widths, numeric, strict=True)
        )
        return "  ".join(parts).rstrip()

    lines = [line(header), "  ".join("-" * width for width in widths)]
    lines.extend(line(cells) for cells in body)
    if not body:
        lines.append("(no usage in this range)")
    return "\n".join(lines) + "\n"


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return as_utc(value).isoformat().replace("+00:00", "Z")


def _decimal_text(value: Decimal) -> str:
    # Plain digits, no exponent, no trailing zeros: Decimal("0.0028200000") -> "0.00282".
    return format(value.normalize(), "f")


def _json_value(value: Any) -> str:
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, dict):
        pairs = (f"{json.dumps(str(k))}:{_json_value(v)}" for k, v in value.items())
        return "{" + ",".join(pairs) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_json_value(v) for v in value) + "]"
    return json.dumps(value)


def _text(value: Any, *, none: str) -> str:
    if value is None:
        return none
    if isinstance(value, Decimal):
        return _decimal_text(value)
    return str(value)
