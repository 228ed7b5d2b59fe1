"""`bedrock-gateway usage`: a usage report read straight from the configured store.

It reads the store the gateway writes, not the gateway's API, so it works when the
gateway is down and needs no admin key: whoever can read the config and reach the
store can already read the ledger. Records still in a running gateway's memory or spill
file are not in the store yet and so not in the report.
"""

from __future__ import annotations

import sys
from typing import TextIO

from gateway.config import GatewayConfig, masked_config
from gateway.usage.report import UsageReport, parse_format, parse_group_by, parse_range, render
from gateway.usage.sqlite import SQLiteUsageStore
from gateway.usage.store import open_store

__all__ = ["run_usage_report"]


async def run_usage_report(
    config: GatewayConfig,
    *,
    group_by: str | None,
    since: str | None,
    until: str | None,
    output_format: str | None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Print the report; the exit status is 0, 2 for a bad argument, 1 for a store error."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    try:
        fields = parse_group_by(group_by, param="--group-by")
        start, end = parse_range(since, until, start_param="--since", end_param="--until")
        fmt = parse_format(output_format, param="--format", default="table")
        store = open_store(config.usage.store)
    except ValueError as exc:
        print(f"error: {exc}", file=err)
        return 2
    # Opening a SQLite store creates it; a report must not leave an empty ledger behind
    # in whatever directory it was run from.
    if isinstance(store, SQLiteUsageStore) and not store.path.is_file():
        print(f"error: no usage store at {store.path} (usage.store)", file=err)
        return 1
    try:
        await store.open()
        try:
            rows = await store.query(group_by=fields, start=start, end=end)
        finally:
            await store.close()
    except Exception as exc:  # the command's boundary: one line, not a traceback
        where = masked_config(config)["usage"]["store"]
        print(f"error: usage store {where}: {type(exc).__name__}: {exc}", file=err)
        return 1
    out.write(render(UsageReport(group_by=fields, start=start, end=end, rows=rows), fmt))
    return 0
