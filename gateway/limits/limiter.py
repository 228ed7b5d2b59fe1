"""Per-key and per-team limits: `admit` before calling Bedrock, `charge` after it answered.

* rpm is counted at admission, atomically with the check, so a burst cannot overshoot.
* tpm is checked at admission against the tokens already charged in the window, and
  charged with the real usage afterwards. A request that will itself go over is only
  known once Bedrock has answered; it is served, and the requests after it wait (OpenAI's
  tpm behaves the same way). Its tokens weigh on the window for at most two minutes.
* budget_usd_monthly compares the calendar month's (UTC) spend with the budget. The spend
  is the usage ledger's total, read through `SpendSource` at most once per `spend_ttl_s`
  per key or team, plus what `charge` added since. Records still on their way to the
  ledger when it is re-read are missed until the next read, so a budget can be exceeded
  by roughly one flush interval's worth of spend, never by more.

A team's limits are shared by all its keys; the key's and the team's are both checked and
the 429 says which one was hit. A principal without limits touches no store at all.

When a store cannot answer (Redis down, ledger unreachable) the request is admitted
(`fail_open`, the default: an outage of the limits store must not become an outage of
the gateway) or refused with 503 `OverloadedError`. Either way `on_store_error` is called
with `"counters"` or `"spend"` for every operation (admission or charge) that the failure
left unchecked, and a warning is logged at most once per `warn_every_s`. A charge that
fails is only reported: the response has already been sent.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

from gateway.config import LimitsFields
from gateway.errors import OverloadedError, RateLimitError
from gateway.keys.index import Principal
from gateway.limits.policy import (
    CounterStore,
    CounterStoreError,
    Window,
    month_start,
    next_month_start,
)

__all__ = ["Admission", "Limiter", "SpendSource"]

logger = logging.getLogger("gateway.limits")


class SpendSource(Protocol):
    """The usage ledger's spend total (`gateway.usage.store.UsageStore` is one)."""

    async def spend(
        self, *, key_id: str | None = None, team: str | None = None, since: datetime
    ) -> Decimal: ...


# An owner of limits: ("key", key_id) or ("team", team name).
Owner = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Admission:
    """What `charge` needs to know about an admitted request: where its usage counts."""

    tpm_counters: tuple[str, ...] = ()
    budget_owners: tuple[Owner, ...] = ()

    @property
    def charges(self) -> bool:
        """Whether `charge` has anything to do (a tpm window or a budget to add to)."""
        return bool(self.tpm_counters or self.budget_owners)


_NOTHING_TO_CHARGE = Admission()


def _unlimited(limits: LimitsFields) -> bool:
    return limits.rpm is None and limits.tpm is None and limits.budget_usd_monthly is None


@dataclass(slots=True)
class _Spend:
    month: datetime
    ledger: Decimal  # the ledger's total when read
    charged: Decimal  # what `charge` added since
    read_at: float  # clock() when read
    error: str | None = None  # the read failed; `ledger` is the last known total, or 0


class Limiter:
    def __init__(
        self,
        counters: CounterStore,
        *,
        teams: Mapping[str, LimitsFields],
        spend: SpendSource | None,
        fail_open: bool = True,
        spend_ttl_s: float = 5.0,
        on_store_error: Callable[[str], None] | None = None,
        warn_every_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._counters = counters
        self._teams = dict(teams)
        self._spend_source = spend
        self._fail_open = fail_open
        self._spend_ttl_s = spend_ttl_s
        self._on_store_error = on_store_error
        self._warn_every_s = warn_every_s
        self._clock = clock
        self._spend: dict[Owner, _Spend] = {}
        self._reading: dict[Owner, asyncio.Future[_Spend]] = {}
        self._warned_at: dict[str, float] = {}
        self._budget_warned = False

    def has_budget(self, principal: Principal) -> bool:
        """Whether the key or its team has a monthly budget (then every call must be priced)."""
        if principal.limits.budget_usd_monthly is not None:
            return True
        team = self._teams.get(principal.team) if principal.team is not None else None
        return team is not None and team.budget_usd_monthly is not None

    async def admit(self, principal: Principal) -> Admission:
        """Check every limit of the key and its team; raise `RateLimitError` (429) naming
        the first one hit, or `OverloadedError` (503) when a store failed and
        `fail_open` is off. Budgets come first: a request refused for its budget must
        not use up a slot of its rpm."""
        team_limits = self._teams.get(principal.team) if principal.team is not None else None
        if _unlimited(principal.limits) and (team_limits is None or _unlimited(team_limits)):
            return _NOTHING_TO_CHARGE  # (most keys: nothing to check, count or charge)
        owners: list[tuple[Owner, LimitsFields]] = [(("key", principal.key_id), principal.limits)]
        if principal.team is not None and team_limits is not None:
            owners.append((("team", principal.team), team_limits))
        now = self._clock()

        budget_owners: list[Owner] = []
        for owner, limits in owners:
            if limits.budget_usd_monthly is not None:
                budget_owners.append(owner)
                await self._check_budget(owner, limits.budget_usd_monthly, now)

        windows: list[Window] = []
        described: list[tuple[Owner, str, int]] = []  # for the message, by window index
        for owner, limits in owners:
            for kind, limit in (("rpm", limits.rpm), ("tpm", limits.tpm)):
                if limit is not None:
                    windows.append(Window(_counter(owner, kind), limit, count=kind == "rpm"))
                    described.append((owner, kind, limit))
        if windows:
            await self._check_windows(windows, described, now)
        return Admission(
            tpm_counters=tuple(w.name for w in windows if not w.count),
            budget_owners=tuple(budget_owners),
        )

    async def charge(self, admission: Admission, *, tokens: int, cost_usd: Decimal | None) -> None:
        """Count what the request really used. Never raises: the response is already
        out, so a failing store is only reported."""
        now = self._clock()
        if cost_usd is not None and cost_usd > 0:
            month = month_start(datetime.fromtimestamp(now, UTC))
            for owner in admission.budget_owners:
                entry = self._spend.get(owner)
                if entry is not None and entry.month == month:
                    entry.charged += cost_usd
        if tokens > 0 and admission.tpm_counters:
            try:
                await self._counters.add(admission.tpm_counters, tokens, int(now * 1000))
            except CounterStoreError as exc:
                self._report("counters", str(exc))

    async def _check_windows(
        self, windows: list[Window], described: list[tuple[Owner, str, int]], now: float
    ) -> None:
        try:
            blocked = await self._counters.admit(windows, int(now * 1000))
        except CounterStoreError as exc:
            self._store_failed("counters", str(exc))
            return
        if blocked is None:
            return
        (scope, name), kind, limit = described[blocked.index]
        unit = "requests" if kind == "rpm" else "tokens"
        wait_s = max(1, math.ceil(blocked.retry_after_ms / 1000))
        raise RateLimitError(
            f"Rate limit reached for {scope} '{name}': {limit} {unit} per minute. "
            f"Retry after {wait_s} s.",
            retry_after_s=wait_s,
            code=f"{kind}_exceeded",
        )

    async def _check_budget(self, owner: Owner, budget: Decimal, now: float) -> None:
        if self._spend_source is None:
            if not self._budget_warned:
                self._budget_warned = True
                logger.warning(
                    "budget_usd_monthly is set (first seen on %s '%s') but there is no usage "
                    "store to read spend from: budgets are not enforced",
                    *owner,
                )
            return
        entry = await self._month_spend(owner, now)
        if entry.error is not None:
            self._store_failed("spend", entry.error)
        spent = entry.ledger + entry.charged
        if spent < budget:
            return
        resets = next_month_start(entry.month)
        wait_s = max(1, math.ceil(resets.timestamp() - now))
        raise RateLimitError(
            f"Monthly budget reached for {owner[0]} '{owner[1]}': ${spent:.2f} spent of "
            f"${budget} this month. It resets on {resets:%Y-%m-%d} 00:00 UTC; "
            f"retry after {wait_s} s.",
            retry_after_s=wait_s,
            code="budget_exceeded",
        )

    async def _month_spend(self, owner: Owner, now: float) -> _Spend:
        """The cached spend, re-read when older than the TTL or from an earlier month.
        Concurrent admissions share one read, so a stale entry costs one query, not one
        per request waiting on it."""
        month = month_start(datetime.fromtimestamp(now, UTC))
        entry = self._spend.get(owner)
        if entry is not None and entry.month == month and now - entry.read_at < self._spend_ttl_s:
            return entry
        reading = self._reading.get(owner)
        if reading is None:
            reading = asyncio.ensure_future(self._read_spend(owner, month, now))
            self._reading[owner] = reading
            reading.add_done_callback(lambda _: self._reading.pop(owner, None))
        # Shielded: one caller giving up (client gone) must not cancel everyone's read.
        return await asyncio.shield(reading)

    async def _read_spend(self, owner: Owner, month: datetime, now: float) -> _Spend:
        assert self._spend_source is not None
        scope, name = owner
        try:
            if scope == "key":
                ledger = await self._spend_source.spend(key_id=name, since=month)
            else:
                ledger = await self._spend_source.spend(team=name, since=month)
        except Exception as exc:  # whatever the ledger's driver raises: reported, not fatal
            # Keep the last known total for this month, if any, and try again after the
            # TTL rather than on every request.
            old = self._spend.get(owner)
            if old is not None and old.month == month:
                entry = _Spend(month, old.ledger, old.charged, read_at=now, error=repr(exc))
            else:
                entry = _Spend(month, Decimal(0), Decimal(0), read_at=now, error=repr(exc))
        else:
            entry = _Spend(month, ledger=ledger, charged=Decimal(0), read_at=now)
        self._spend[owner] = entry
        return entry

    def _store_failed(self, kind: str, error: str) -> None:
        """An admission could not be checked: admit (return) or refuse with 503."""
        self._report(kind, error)
        if not self._fail_open:
            raise OverloadedError(
                f"Rate limits cannot be checked right now ({_WHAT[kind]} unavailable). "
                "Retry in a moment.",
                retry_after_s=1,
            )

    def _report(self, kind: str, error: str) -> None:
        if self._on_store_error is not None:
            self._on_store_error(kind)
        now = time.monotonic()
        last = self._warned_at.get(kind)
        if last is None or now - last >= self._warn_every_s:
            self._warned_at[kind] = now
            policy = "admitted unchecked" if self._fail_open else "refused with 503"
            logger.warning(
                "%s failed (%s); requests it should limit are %s", _WHAT[kind], error, policy
            )


_WHAT = {"counters": "limits store", "spend": "usage ledger"}


def _counter(owner: Owner, kind: str) -> str:
    return f"{owner[0][0]}:{owner[1]}:{kind}"
