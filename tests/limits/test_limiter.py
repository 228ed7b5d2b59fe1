"""rpm and tpm through the Limiter, the same suite on the memory store and on Redis.

The clock starts on a minute boundary and only the test moves it, so every `retry-after`
below is the exact value of the sliding-window formula, worked out in the comments.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal

import pytest

from gateway.config import LimitsFields
from gateway.errors import RateLimitError
from gateway.keys.index import Principal
from gateway.limits import Limiter
from gateway.limits.policy import Blocked, Window
from tests.limits.conftest import Clock, Stores, principal


async def refused(limiter: Limiter, who: Principal) -> RateLimitError:
    with pytest.raises(RateLimitError) as caught:
        await limiter.admit(who)
    return caught.value


async def test_rpm_refuses_with_code_message_and_retry_after(stores: Stores, clock: Clock) -> None:
    limiter = stores.limiter(clock)
    app1 = principal("app1", rpm=3)
    for _ in range(3):
        await limiter.admit(app1)

    error = await refused(limiter, app1)

    # 3 requests at second 0: the next minute starts in 60 s, and there the 3 slide out
    # until 3 * (60 - t) / 60 + 1 <= 3, i.e. t = 20 s: 80 s in all.
    assert error.status == 429
    assert error.code == "rpm_exceeded"
    assert error.retry_after_s == 80
    assert error.headers["retry-after"] == "80"
    assert error.message == (
        "Rate limit reached for key 'app1': 3 requests per minute. Retry after 80 s."
    )


async def test_window_rolls_over_exactly_at_retry_after(stores: Stores, clock: Clock) -> None:
    limiter = stores.limiter(clock)
    app1 = principal("app1", rpm=3)
    for _ in range(3):
        await limiter.admit(app1)

    clock.advance(79)
    assert (await refused(limiter, app1)).retry_after_s == 1
    clock.advance(1)
    await limiter.admit(app1)
    # Now 1 counted this minute and 3 * 40/60 = 2 still weighing from the last: full.
    assert (await refused(limiter, app1)).code == "rpm_exceeded"
    clock.advance(121)  # both minutes behind us: a clean slate
    for _ in range(3):
        await limiter.admit(app1)


async def test_previous_minute_slides_out_mid_minute(stores: Stores, clock: Clock) -> None:
    limiter = stores.limiter(clock)
    app1 = principal("app1", rpm=4)
    for _ in range(4):
        await limiter.admit(app1)
    clock.advance(90)  # 30 s into the next minute: the last one's 4 weigh 4 * 30/60 = 2
    await limiter.admit(app1)
    await limiter.admit(app1)

    error = await refused(limiter, app1)

    # 2 now + 4 * (30 - t) / 60 + 1 <= 4 once t >= 15 s.
    assert error.retry_after_s == 15
    clock.advance(14)
    await refused(limiter, app1)
    clock.advance(1)
    await limiter.admit(app1)


async def test_tpm_counts_charged_tokens_not_admissions(stores: Stores, clock: Clock) -> None:
    limiter = stores.limiter(clock)
    app1 = principal("app1", tpm=1000)
    for _ in range(20):  # admission alone never uses tokens
        admission = await limiter.admit(app1)
    await limiter.charge(admission, tokens=999, cost_usd=None)
    admission = await limiter.admit(app1)  # 1 token of room left: enough to start
    await limiter.charge(admission, tokens=1, cost_usd=None)

    error = await refused(limiter, app1)

    # 1000 charged at second 0: next minute, 1000 * (60 - t) / 60 + 1 <= 1000 at t = 0.06 s.
    assert error.code == "tpm_exceeded"
    assert error.retry_after_s == 61
    assert error.message == (
        "Rate limit reached for key 'app1': 1000 tokens per minute. Retry after 61 s."
    )
    clock.advance(61)
    await limiter.admit(app1)


async def test_one_large_request_may_overshoot_tpm_then_blocks(
    stores: Stores, clock: Clock
) -> None:
    limiter = stores.limiter(clock)
    app1 = principal("app1", tpm=100)
    admission = await limiter.admit(app1)
    await limiter.charge(admission, tokens=250, cost_usd=None)  # only known afterwards

    error = await refused(limiter, app1)

    # Next minute: 250 * (60 - t) / 60 + 1 <= 100 at t = 36.24 s, so 96.24 s -> 97.
    assert error.retry_after_s == 97
    clock.advance(96)
    await refused(limiter, app1)
    clock.advance(1)
    await limiter.admit(app1)


async def test_team_limit_is_shared_by_its_keys(stores: Stores, clock: Clock) -> None:
    limiter = stores.limiter(clock, teams={"search": LimitsFields(rpm=2)})
    app1 = principal("app1", team="search")
    app2 = principal("app2", team="search")
    other = principal("app3", team="ads")
    await limiter.admit(app1)
    await limiter.admit(app2)

    error = await refused(limiter, app1)

    assert error.code == "rpm_exceeded"
    assert error.message.startswith("Rate limit reached for team 'search': 2 requests per")
    await refused(limiter, app2)
    await limiter.admit(other)  # a team without limits in the config limits nothing


async def test_refusal_by_one_limit_uses_up_no_other(stores: Stores, clock: Clock) -> None:
    limiter = stores.limiter(clock, teams={"search": LimitsFields(rpm=3)})
    app1 = principal("app1", team="search", rpm=1)
    app2 = principal("app2", team="search")
    await limiter.admit(app1)
    for _ in range(5):
        error = await refused(limiter, app1)
        assert "key 'app1'" in error.message  # the key's limit, and the team's untouched
    await limiter.admit(app2)
    await limiter.admit(app2)
    assert "team 'search'" in (await refused(limiter, app2)).message


async def test_team_tpm_is_charged_through_every_key(stores: Stores, clock: Clock) -> None:
    limiter = stores.limiter(clock, teams={"search": LimitsFields(tpm=500)})
    app1 = principal("app1", team="search", tpm=10_000)
    app2 = principal("app2", team="search")
    await limiter.charge(await limiter.admit(app1), tokens=300, cost_usd=None)
    await limiter.charge(await limiter.admit(app2), tokens=200, cost_usd=None)

    error = await refused(limiter, app1)

    assert error.code == "tpm_exceeded"
    assert "team 'search': 500 tokens per minute" in error.message


async def test_concurrent_burst_admits_exactly_the_limit(stores: Stores, clock: Clock) -> None:
    # For Redis: five gateways, each with its own connection pool, on one server.
    limiters = [stores.limiter(clock) for _ in range(5)]
    app1 = principal("app1", rpm=20)

    async def attempt(limiter: Limiter) -> bool:
        try:
            await limiter.admit(app1)
        except RateLimitError:
            return False
        return True

    outcomes = await asyncio.wait_for(
        asyncio.gather(*(attempt(limiters[i % 5]) for i in range(50))), timeout=10
    )

    assert outcomes.count(True) == 20
    assert outcomes.count(False) == 30


class ExplodingStore:
    """A counter store that fails the test if it is used at all."""

    async def admit(self, windows: Sequence[Window], now_ms: int) -> Blocked | None:
        raise AssertionError(f"store used for {windows}")

    async def add(self, names: Sequence[str], amount: int, now_ms: int) -> None:
        raise AssertionError(f"store used to add {amount} to {names}")

    async def aclose(self) -> None:
        raise AssertionError("store closed by the limiter")


async def test_principals_without_limits_never_touch_the_store(clock: Clock) -> None:
    limiter = Limiter(
        ExplodingStore(),
        teams={"search": LimitsFields(), "ads": LimitsFields(rpm=1)},
        spend=None,
        clock=clock,
    )
    for who in (
        principal("app1"),
        principal("app2", team="search"),  # the team is listed, without limits
        principal("app3", team="unlisted"),
        principal("app4", budget="10"),  # budgets are not counters
    ):
        admission = await limiter.admit(who)
        await limiter.charge(admission, tokens=1_000_000, cost_usd=Decimal("3"))

    with pytest.raises(AssertionError, match="store used"):
        await limiter.admit(principal("app5", team="ads"))  # and this one must
