"""Calling Bedrock before the first byte: bounded retries, then fallbacks, fast failure.

Peers stall for tens of seconds on a throttled call because botocore's backoff and a
client-side rate limiter stack up behind each other. Here botocore makes one attempt per
call, and this module owns the policy:

* only errors the table in `gateway.translate.shared.errors` marks `retryable` (throttling,
  service unavailable, model not ready, connection failures) are retried;
* at most `bedrock.retries.max_attempts` attempts per candidate, with full-jitter
  exponential backoff, and a hard cap on the total time spent sleeping;
* a candidate is one (model, region): a model listing several `regions` moves to its next
  region first, and only then to its `fallbacks`, in order (also on a first-token
  timeout); a region whose breaker is open (`gateway.bedrock.breaker`) is skipped;
* all of it before the response has started: once a byte is out, errors are events.

When everything failed, the client gets the last error with a `retry-after` that says when
another try is worth it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from gateway.bedrock.breaker import RegionBreaker
from gateway.bedrock.catalog import ResolvedModel
from gateway.bedrock.client import BedrockError
from gateway.errors import UpstreamError
from gateway.translate.shared.errors import BEDROCK_ERRORS, to_upstream_error

__all__ = ["FIRST_TOKEN_TIMEOUT", "RetryPolicy", "call_with_fallbacks"]

T = TypeVar("T")

# Jitter needs no secrecy and no reproducibility: one generator for the process, since
# seeding a new one costs more than the rest of the retry bookkeeping.
_RNG = random.Random()

# Our name for "no first token within the model's ttft_timeout_s"; a row in the error table.
FIRST_TOKEN_TIMEOUT = "FirstTokenTimeout"


def _retryable(name: str) -> bool:
    mapping = BEDROCK_ERRORS.get(name)
    return mapping is not None and mapping.retryable


def _falls_back(name: str) -> bool:
    return _retryable(name) or name == FIRST_TOKEN_TIMEOUT


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3  # per model, first attempt included
    base_delay_s: float = 0.05
    max_delay_s: float = 1.0
    total_sleep_s: float = 2.0  # across all attempts and fallbacks of one request

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2^attempt)]."""
        return rng.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt))


async def call_with_fallbacks(
    candidates: Sequence[ResolvedModel],
    attempt: Callable[[ResolvedModel], Awaitable[T]],
    *,
    policy: RetryPolicy,
    on_error: Callable[[ResolvedModel, BedrockError], None],
    rng: random.Random | None = None,
    breaker: RegionBreaker | None = None,
    on_failover: Callable[[ResolvedModel, ResolvedModel], None] | None = None,
) -> tuple[ResolvedModel, T]:
    """The first success of `attempt` over the candidates, or the last failure, mapped.

    `breaker` (only when some model lists several regions) skips cooling regions and
    learns from each answer; `on_failover(from, to)` is told when a request moves on to
    the same model in another region.
    """
    rng = rng or _RNG
    slept = 0.0
    last: BedrockError | None = None
    previous: ResolvedModel | None = None
    if breaker is not None:
        candidates = breaker.available(candidates)
    for candidate in candidates:
        if (
            on_failover is not None
            and previous is not None
            and previous.public_name == candidate.public_name
            and previous.region != candidate.region
        ):
            on_failover(previous, candidate)
        previous = candidate
        for number in range(policy.max_attempts):
            try:
                answer = await attempt(candidate)
            except BedrockError as exc:
                on_error(candidate, exc)
                if breaker is not None:
                    breaker.failed(candidate, exc.name)
                last = exc
                if not _retryable(exc.name) or number + 1 == policy.max_attempts:
                    break
                pause = min(policy.delay(number, rng), policy.total_sleep_s - slept)
                if pause <= 0:
                    break
                await asyncio.sleep(pause)
                slept += pause
            else:
                if breaker is not None:
                    breaker.succeeded(candidate)
                return candidate, answer
        assert last is not None
        if not _falls_back(last.name):
            raise _final_error(last, policy)
    assert last is not None
    raise _final_error(last, policy)


def _final_error(exc: BedrockError, policy: RetryPolicy) -> UpstreamError:
    # Everything we were willing to try has been tried: a client should wait at least as
    # long as our own longest backoff before trying again.
    retry_after = max(1.0, policy.max_delay_s) if _retryable(exc.name) else None
    return to_upstream_error(exc.name, exc.message, retry_after_s=retry_after)
