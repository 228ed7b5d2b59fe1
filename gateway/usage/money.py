"""Exact money and timestamps, shared by the price book and both usage stores.

Every cost the gateway records is a `Decimal` rounded to `COST_PLACES` decimal places
(1e-10 USD), once, when the request is priced. Both stores keep exactly that value: the
PostgreSQL store as `NUMERIC(20, 10)`, the SQLite store as an integer count of 1e-10 USD,
because SQLite has no decimal type and its `SUM` over `REAL` drifts. Summing fixed-point
integers is exact, so a report over ten million requests adds up to the cent, and the two
stores agree to the last digit on the same records.

Ten places, because the smallest bundled price (Nova Micro cache reads, $0.00000875 per
1,000 tokens) is 8.75e-9 USD per token: ten places keep each record within half of 1e-10
USD of the exact product, and a 64-bit integer still sums to about $920 million.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

__all__ = [
    "COST_PLACES",
    "COST_QUANTUM",
    "as_utc",
    "cost_from_units",
    "cost_to_units",
    "quantize_cost",
]

COST_PLACES = 10
COST_QUANTUM = Decimal(1).scaleb(-COST_PLACES)


def quantize_cost(value: Decimal) -> Decimal:
    """Round to the stored precision; half-even, so rounding errors do not lean one way."""
    return value.quantize(COST_QUANTUM, rounding=ROUND_HALF_EVEN)


def cost_to_units(value: Decimal) -> int:
    """USD -> whole 1e-10 USD units (SQLite's exact representation)."""
    return int(quantize_cost(value).scaleb(COST_PLACES))


def cost_from_units(units: int) -> Decimal:
    """Whole 1e-10 USD units -> USD, with the same exponent as a quantized cost."""
    return quantize_cost(Decimal(units).scaleb(-COST_PLACES))


def as_utc(value: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already (as records are)."""
    tz = value.tzinfo
    if tz is UTC:
        return value  # (every record's: the pipeline stamps them in UTC)
    if tz is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
