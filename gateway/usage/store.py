"""Where usage records are kept: the `UsageStore` protocol and `open_store(dsn)`.

Two implementations sit behind the one protocol: SQLite for a single gateway (the
default, nothing to run) and PostgreSQL for a fleet writing to one ledger. The recorder,
`/v1/usage`, `/readyz` and the `usage` CLI only see the protocol, so tests can put a fake
store behind it to inject failures.

Two promises every store keeps:

* `write()` is idempotent by record id (`INSERT ... ON CONFLICT DO NOTHING`), in one
  transaction. The recorder retries a batch whose outcome it could not see (a timeout, a
  dropped connection after COMMIT), so a repeated batch must never count twice.
* `query()` only puts names from `GROUP_FIELDS` into SQL. They become identifiers, which
  no driver can bind as parameters, so the allow-list is what keeps them injection-free.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from gateway.usage.record import UsageRecord

__all__ = [
    "GROUP_FIELDS",
    "METRIC_FIELDS",
    "UsageStore",
    "open_store",
    "validate_group_by",
]

GROUP_FIELDS: tuple[str, ...] = (
    "key_id",
    "team",
    "user",
    "end_user",
    "model",
    "route",
    "status",
    "day",
    "service_tier",
    "region",
    "guardrail_id",
)
"""What a usage report can be grouped by; `day` is the UTC date as "YYYY-MM-DD"."""

METRIC_FIELDS: tuple[str, ...] = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "cost_usd",
)
"""The sums in every report row, after the group fields, in this order."""


class UsageStore(Protocol):
    """A durable, queryable ledger of usage records.

    Aggregate rows from `query()` are dicts: the group fields (str, or None where the
    records had none), then `requests` and the four token sums (int) and `cost_usd`
    (Decimal, or None when no record of the group had a known price: an unknown price is
    never reported as zero). Requests without a price add nothing to `cost_usd`. Rows come
    ordered by their group values, a missing value after the others, the same in every
    store; groups without requests are not listed.
    """

    async def open(self) -> None:
        """Connect, create the file or schema, and apply pending migrations."""

    async def close(self) -> None:
        """Release connections; the store cannot be used afterwards."""

    async def ping(self) -> None:
        """Raise if the store cannot answer a trivial query right now (for /readyz)."""

    async def write(self, records: Sequence[UsageRecord]) -> None:
        """Store a batch in one transaction; ids already stored are skipped."""

    async def query(
        self,
        *,
        group_by: Sequence[str],
        start: datetime | None = None,
        end: datetime | None = None,
        key_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Sums per group over `start <= ts < end`; `key_id` restricts to one key."""

    async def spend(
        self, *, key_id: str | None = None, team: str | None = None, since: datetime
    ) -> Decimal:
        """Total known cost since `since` for a key, a team, both, or everyone."""


def validate_group_by(group_by: Sequence[str]) -> tuple[str, ...]:
    """Check names against `GROUP_FIELDS`; duplicates and unknown names are errors."""
    if isinstance(group_by, str):
        raise TypeError("group_by must be a sequence of field names, not one string")
    seen: list[str] = []
    for name in group_by:
        if name not in GROUP_FIELDS:
            allowed = ", ".join(GROUP_FIELDS)
            raise ValueError(f"cannot group usage by {name!r}; allowed: {allowed}")
        if name in seen:
            raise ValueError(f"usage group field {name!r} is given twice")
        seen.append(name)
    return tuple(seen)


def open_store(dsn: str, *, schema: str | None = None) -> UsageStore:
    """A store for the `usage.store` setting; call `await store.open()` before use.

    * `sqlite:///relative/path.db` (relative to the working directory) or
      `sqlite:////absolute/path.db`
    * `postgresql://user:password@host:5432/db` (or `postgres://`); `schema` puts the
      tables in that PostgreSQL schema instead of the connection's default.
    """
    scheme, sep, rest = dsn.partition("://")
    if not sep:
        raise ValueError(
            "usage.store must be a URL such as sqlite:///gateway-usage.db "
            "or postgresql://user@host:5432/db"
        )
    scheme = scheme.lower()
    if scheme == "sqlite":
        if schema is not None:
            raise ValueError("usage.store: a schema can only be chosen for PostgreSQL")
        from gateway.usage.sqlite import SQLiteUsageStore

        return SQLiteUsageStore(_sqlite_path(rest))
    if scheme in ("postgresql", "postgres"):
        from gateway.usage.postgres import PostgresUsageStore

        return PostgresUsageStore(dsn, schema=schema)
    # Only the scheme is echoed: the rest of the URL may carry a password.
    raise ValueError(
        f"usage.store: unsupported scheme {scheme!r}; use sqlite:///path.db "
        "or postgresql://user@host:5432/db"
    )


def _sqlite_path(rest: str) -> Path:
    # sqlite:///a.db -> rest "/a.db" -> "a.db"; sqlite:////abs/a.db -> "//abs/a.db" -> "/abs/a.db"
    if not rest.startswith("/"):
        raise ValueError(
            "usage.store: a SQLite URL has no host; write sqlite:///relative.db "
            "or sqlite:////absolute/path.db"
        )
    path = rest[1:]
    if not path or path.endswith("/"):
        raise ValueError("usage.store: the SQLite URL names no database file")
    return Path(path)


def aggregate_sql(
    fields: Sequence[str], *, groups: Mapping[str, str], sums: Sequence[str], where: str
) -> str:
    """The report query both stores run: one row per group, in `fields` order, then sums.

    `groups` maps each groupable field to its SQL expression in that store's dialect;
    `sums` are requests, the four token sums and the cost, in that order.
    """
    selected = [f"{groups[name]} AS g{i}" for i, name in enumerate(fields)]
    sql = f"SELECT {', '.join([*selected, *sums])} FROM usage_records{where}"
    if fields:
        sql += " GROUP BY " + ", ".join(f"g{i}" for i in range(len(fields)))
    return sql


def aggregate_rows(
    raw: Iterable[Sequence[Any]],
    fields: Sequence[str],
    *,
    cost: Callable[[Any], Decimal],
) -> list[dict[str, Any]]:
    """Result rows of `aggregate_sql` as the contract's report rows, in a fixed order.

    Sorted here, not in SQL: PostgreSQL's collation would order text differently from
    SQLite, and a report should not depend on the store behind it.
    """
    rows: list[dict[str, Any]] = []
    for values in raw:
        groups, sums = values[: len(fields)], values[len(fields) :]
        if sums[0] == 0:
            continue  # no GROUP BY over no records still yields one all-NULL row
        row: dict[str, Any] = dict(zip(fields, groups, strict=True))
        row.update(
            requests=int(sums[0]),
            input_tokens=int(sums[1]),
            output_tokens=int(sums[2]),
            cache_read_tokens=int(sums[3]),
            cache_write_tokens=int(sums[4]),
            cache_write_1h_tokens=int(sums[5]),
            cost_usd=None if sums[6] is None else cost(sums[6]),
        )
        rows.append(row)
    rows.sort(key=lambda r: tuple((r[f] is None, r[f] or "") for f in fields))
    return rows
