"""Reading Bedrock's token counts: what every pair and the pipeline's ledger need alike.

Converse reports `cacheWriteInputTokens` for cache writes of every lifetime and splits
them by TTL in `cacheDetails`; 1-hour writes are priced apart (`cache_write_1h_per_1k`),
so the 1-hour share is read in one place, whichever surface made the call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["cache_write_1h_tokens"]


def cache_write_1h_tokens(usage: Mapping[str, Any]) -> int:
    """The 1-hour cache writes of a Converse `usage`: its `cacheDetails` entries with ttl 1h."""
    details = usage.get("cacheDetails")
    if not isinstance(details, list):
        return 0
    return sum(
        int(entry.get("inputTokens") or 0)
        for entry in details
        if isinstance(entry, Mapping) and entry.get("ttl") == "1h"
    )
