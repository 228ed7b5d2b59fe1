"""The window arithmetic against an exact oracle, the calendar, and store selection."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gateway.limits import MemoryCounterStore, open_counter_store
from gateway.limits.policy import WINDOW_MS, estimate, month_start, next_month_start, wait_ms
from gateway.limits.redis import RedisCounterStore


def fits_after(previous: int, current: int, limit: int, elapsed_ms: int, wait: int) -> bool:
    """Would one more fit `wait` ms from now, with no other traffic? Exact fractions."""
    at = elapsed_ms + wait
    if at >= 2 * WINDOW_MS:
        return True
    if at >= WINDOW_MS:  # the current bucket has become the previous one
        previous, current, at = current, 0, at - WINDOW_MS
    used = Fraction(previous * (WINDOW_MS - at), WINDOW_MS) + current
    return used + 1 <= limit


@settings(max_examples=400, deadline=None)
@given(
    previous=st.integers(0, 1_000_000),
    current=st.integers(0, 1_000_000),
    limit=st.integers(1, 100_000),
    elapsed_ms=st.integers(0, WINDOW_MS - 1),
)
def test_wait_is_the_first_millisecond_with_room(
    previous: int, current: int, limit: int, elapsed_ms: int
) -> None:
    assume(not fits_after(previous, current, limit, elapsed_ms, 0))

    wait = wait_ms(previous, current, limit, elapsed_ms)

    assert 1 <= wait <= 2 * WINDOW_MS
    assert fits_after(previous, current, limit, elapsed_ms, wait)
    assert wait == 1 or not fits_after(previous, current, limit, elapsed_ms, wait - 1)


def test_estimate_weighs_the_previous_minute_by_its_overlap() -> None:
    assert estimate(10, 3, 0) == 13
    assert estimate(10, 3, 45_000) == 5.5
    assert math.isclose(estimate(10, 3, WINDOW_MS - 1), 3, abs_tol=0.001)


@pytest.mark.parametrize(
    ("moment", "start", "following"),
    [
        (datetime(2026, 3, 10, 12, tzinfo=UTC), datetime(2026, 3, 1), datetime(2026, 4, 1)),
        (
            datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),
            datetime(2026, 12, 1),
            datetime(2027, 1, 1),
        ),
        (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 1), datetime(2026, 3, 1)),
        # 00:30 on May 1st in UTC+2 is still April in UTC, where budgets are kept.
        (
            datetime(2026, 5, 1, 0, 30, tzinfo=timezone(timedelta(hours=2))),
            datetime(2026, 4, 1),
            datetime(2026, 5, 1),
        ),
    ],
)
def test_months_are_calendar_months_in_utc(
    moment: datetime, start: datetime, following: datetime
) -> None:
    assert month_start(moment) == start.replace(tzinfo=UTC)
    assert next_month_start(moment) == following.replace(tzinfo=UTC)


async def test_open_counter_store_by_setting() -> None:
    assert isinstance(open_counter_store("memory"), MemoryCounterStore)
    for url in ("redis://127.0.0.1:1/0", "rediss://user:pw@127.0.0.1:1/0"):
        store = open_counter_store(url, prefix="x:", timeout_s=0.1)  # connects lazily
        assert isinstance(store, RedisCounterStore)
        await store.aclose()


@pytest.mark.parametrize(
    ("setting", "shown"),
    [
        ("postgresql://gw:secret@db/usage", "'postgresql://...'"),
        ("memcache", "'memcache'"),
        ("gw:secret@redis", "'<redacted>'"),
        ("", "''"),
    ],
)
def test_open_counter_store_rejects_other_settings(setting: str, shown: str) -> None:
    with pytest.raises(ValueError, match=r"limits\.store") as caught:
        open_counter_store(setting)
    assert str(caught.value).endswith(f"not {shown}")
    assert "secret" not in str(caught.value)
