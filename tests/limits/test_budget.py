"""Monthly budgets: the ledger's spend, cached for a few seconds, plus what was charged.

Budgets never touch the counter store, so these run on the memory store only; the fake
ledger counts its reads, which is what the cache is for.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gateway.config import LimitsFields
from gateway.errors import OverloadedError, RateLimitError
from gateway.limits import Limiter, MemoryCounterStore, SpendSource
from tests.limits.conftest import T0, Clock, principal

MARCH = datetime(2026, 3, 1, tzinfo=UTC)
APRIL = datetime(2026, 4, 1, tzinfo=UTC)


class FakeLedger:
    """Spend per ("key", id) or ("team", name); can fail, or hold reads until released."""

    def __init__(self, **totals: str) -> None:
        self.totals: dict[tuple[str, str | None], Decimal] = {}
        for name, value in totals.items():  # key_app1="9.50", team_search="100"
            scope, _, owner = name.partition("_")
            self.totals[scope, owner] = Decimal(value)
        self.calls: list[tuple[str | None, str | None, datetime]] = []
        self.error: Exception | None = None
        self.gate: asyncio.Event | None = None

    async def spend(
        self, *, key_id: str | None = None, team: str | None = None, since: datetime
    ) -> Decimal:
        self.calls.append((key_id, team, since))
        if self.gate is not None:
            await asyncio.wait_for(self.gate.wait(), timeout=5)
        if self.error is not None:
            raise self.error
        owner = ("key", key_id) if key_id is not None else ("team", team)
        return self.totals.get(owner, Decimal(0))


def make_limiter(
    clock: Clock,
    spend: SpendSource | None,
    *,
    teams: dict[str, LimitsFields] | None = None,
    fail_open: bool = True,
    errors: list[str] | None = None,
    ttl_s: float = 5.0,
) -> Limiter:
    return Limiter(
        MemoryCounterStore(),
        teams=teams or {},
        spend=spend,
        fail_open=fail_open,
        spend_ttl_s=ttl_s,
        on_store_error=errors.append if errors is not None else None,
        clock=clock,
    )


async def test_ledger_plus_charges_reaches_the_budget(clock: Clock) -> None:
    ledger = FakeLedger(key_app1="9.50")
    limiter = make_limiter(clock, ledger)
    app1 = principal("app1", budget="10")
    await limiter.charge(await limiter.admit(app1), tokens=10, cost_usd=Decimal("0.40"))
    await limiter.charge(await limiter.admit(app1), tokens=10, cost_usd=Decimal("0.20"))

    with pytest.raises(RateLimitError) as caught:
        await limiter.admit(app1)

    error = caught.value
    assert error.code == "budget_exceeded"
    assert error.retry_after_s == (APRIL.timestamp() - T0) == 1_857_600  # 21.5 days
    assert error.headers["retry-after"] == "1857600"
    assert error.message == (
        "Monthly budget reached for key 'app1': $10.10 spent of $10 this month. "
        "It resets on 2026-04-01 00:00 UTC; retry after 1857600 s."
    )
    assert ledger.calls == [("app1", None, MARCH)]  # one read, cached for the rest


async def test_spend_is_read_again_after_the_ttl(clock: Clock) -> None:
    ledger = FakeLedger(key_app1="5")
    limiter = make_limiter(clock, ledger)
    app1 = principal("app1", budget="10")
    await limiter.charge(await limiter.admit(app1), tokens=1, cost_usd=Decimal("4"))
    ledger.totals["key", "app1"] = Decimal("9")  # the charge reached the ledger

    clock.advance(4.9)
    await limiter.admit(app1)
    assert len(ledger.calls) == 1
    clock.advance(0.1)
    await limiter.admit(app1)  # 9, not 9 + 4: the charge is in the new total
    assert len(ledger.calls) == 2

    ledger.totals["key", "app1"] = Decimal("10")  # spent through another gateway
    clock.advance(5)
    with pytest.raises(RateLimitError, match="budget"):
        await limiter.admit(app1)


async def test_team_budget_covers_every_key_of_the_team(clock: Clock) -> None:
    ledger = FakeLedger(team_search="99.99")
    limiter = make_limiter(
        clock, ledger, teams={"search": LimitsFields(budget_usd_monthly=Decimal(100))}
    )
    app1 = principal("app1", team="search")
    app2 = principal("app2", team="search")
    await limiter.charge(await limiter.admit(app1), tokens=1, cost_usd=Decimal("0.01"))

    for who in (app1, app2):
        with pytest.raises(RateLimitError) as caught:
            await limiter.admit(who)
        assert caught.value.code == "budget_exceeded"
        assert "team 'search': $100.00 spent of $100" in caught.value.message
    assert ledger.calls == [(None, "search", MARCH)]


async def test_budget_resets_with_the_calendar_month(clock: Clock) -> None:
    clock.now = datetime(2026, 3, 31, 23, 59, 30, tzinfo=UTC).timestamp()
    ledger = FakeLedger(key_app1="10")
    limiter = make_limiter(clock, ledger, ttl_s=3600)  # the month, not the TTL, expires it
    app1 = principal("app1", budget="10")

    with pytest.raises(RateLimitError) as caught:
        await limiter.admit(app1)
    assert caught.value.retry_after_s == 30

    ledger.totals["key", "app1"] = Decimal(0)  # nothing spent in April yet
    clock.advance(30)
    admission = await limiter.admit(app1)
    assert ledger.calls[-1] == ("app1", None, APRIL)
    await limiter.charge(admission, tokens=1, cost_usd=Decimal("9.99"))
    await limiter.admit(app1)


async def test_without_a_ledger_budgets_warn_once(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = make_limiter(clock, None)
    with caplog.at_level(logging.WARNING, logger="gateway.limits"):
        for key_id in ("app1", "app2", "app1"):
            admission = await limiter.admit(principal(key_id, budget="1"))
            await limiter.charge(admission, tokens=1, cost_usd=Decimal(100))

    warnings = [r for r in caplog.records if "budgets are not enforced" in r.getMessage()]
    assert len(warnings) == 1


async def test_concurrent_admissions_share_one_read(clock: Clock) -> None:
    ledger = FakeLedger(key_app1="1")
    ledger.gate = asyncio.Event()
    limiter = make_limiter(clock, ledger)
    app1 = principal("app1", budget="10")

    waiting = [asyncio.ensure_future(limiter.admit(app1)) for _ in range(10)]
    await asyncio.sleep(0)
    ledger.gate.set()
    await asyncio.wait_for(asyncio.gather(*waiting), timeout=5)

    assert len(ledger.calls) == 1


async def test_unreadable_ledger_fails_open_and_is_retried_after_the_ttl(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = FakeLedger(key_app1="12")
    errors: list[str] = []
    limiter = make_limiter(clock, ledger, errors=errors)
    app1 = principal("app1", budget="10")
    app2 = principal("app2", budget="10")
    with pytest.raises(RateLimitError):
        await limiter.admit(app1)

    ledger.error = OSError("connection refused")
    clock.advance(5)
    with caplog.at_level(logging.WARNING, logger="gateway.limits"):
        for _ in range(3):
            await limiter.admit(app2)  # never read: admitted unchecked
        with pytest.raises(RateLimitError):
            await limiter.admit(app1)  # the last known total still counts

    assert errors == ["spend"] * 4
    assert len(ledger.calls) == 3  # app1, app1 again after the TTL, app2 once
    assert len([r for r in caplog.records if "usage ledger failed" in r.getMessage()]) == 1

    ledger.error = None
    clock.advance(5)
    await limiter.admit(app2)
    assert errors == ["spend"] * 4


async def test_unreadable_ledger_fails_closed_when_configured(clock: Clock) -> None:
    ledger = FakeLedger()
    ledger.error = OSError("connection refused")
    errors: list[str] = []
    limiter = make_limiter(clock, ledger, fail_open=False, errors=errors)

    with pytest.raises(OverloadedError) as caught:
        await limiter.admit(principal("app1", budget="10"))

    assert caught.value.status == 503
    assert caught.value.headers["retry-after"] == "1"
    assert "usage ledger unavailable" in caught.value.message
    assert errors == ["spend"]
    await limiter.admit(principal("app2"))  # keys without a budget are not affected
