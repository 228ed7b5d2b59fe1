"""Prometheus metrics with the names and labels of CONTRACT.md, on an injected registry.

One `Metrics` object owns every collector, so tests get a fresh `CollectorRegistry` per app
and nothing is registered at import time. With `--workers N` each worker writes to
prometheus-client's multiprocess directory (`PROMETHEUS_MULTIPROC_DIR`) and `/metrics`
aggregates the files, so counters and histograms sum across workers, whichever worker
answers the scrape. `serve` gives the workers an empty directory (see `gateway.__main__`).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from gateway.usage.record import UsageRecord

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# Latency buckets from 5 ms: the gateway's own overhead is around a millisecond, a model's
# answer takes seconds to minutes.
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)

# prometheus-client's per-process files of "live" gauges: `gauge_livesum_<pid>.db`, ...
_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]*_(\d+)\.db")


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "gateway_requests_total",
            "Requests answered, by final HTTP status.",
            ["route", "model", "team", "key_id", "status"],
            registry=r,
        )
        self.tokens = Counter(
            "gateway_tokens_total",
            "Tokens as reported by Bedrock (or estimated when it could not be read).",
            ["model", "team", "key_id", "type"],
            registry=r,
        )
        self.cost = Counter(
            "gateway_cost_usd_total",
            "Cost in USD from the configured and bundled prices.",
            ["model", "team", "key_id"],
            registry=r,
        )
        self.duration = Histogram(
            "gateway_request_duration_seconds",
            "Time from request received to the last byte sent.",
            ["route", "model"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "gateway_time_to_first_token_seconds",
            "Time from request received to the first content delta sent (streams).",
            ["model"],
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "gateway_upstream_errors_total",
            "Failed Bedrock calls, by Bedrock exception name.",
            ["model", "error"],
            registry=r,
        )
        self.region_failovers = Counter(
            "gateway_region_failovers_total",
            "Requests moved to the model's next region before the first byte.",
            ["model", "from_region", "to_region"],
            registry=r,
        )
        # CONTRACT v2 ("Governance"): guardrail = the guardrail's configured id or ARN.
        self.guardrail_interventions = Counter(
            "gateway_guardrail_interventions_total",
            "Answers a Bedrock guardrail intervened in (blocked or masked).",
            ["model", "team", "guardrail"],
            registry=r,
        )
        self.inflight = Gauge(
            "gateway_inflight_requests",
            "Requests being served now.",
            ["route"],
            registry=r,
            multiprocess_mode="livesum",
        )
        # Not in the contract's table: an addition, so that a limits outage (fail open) shows.
        self.limits_store_errors = Counter(
            "gateway_limits_store_errors_total",
            "Limit checks or charges skipped because their store failed (fail open).",
            ["store"],
            registry=r,
        )
        self.usage_queue_depth = Gauge(
            "gateway_usage_queue_depth",
            "Usage records not yet durably written to the usage store.",
            registry=r,
            multiprocess_mode="livesum",
        )
        # Not in the contract's table (issue 19, item 1): records a store refused on their
        # own, set aside in the dead-letter file so they do not block the ledger.
        self.usage_dead_letters = Counter(
            "gateway_usage_dead_letters_total",
            "Usage records the usage store refused, set aside to the dead-letter file.",
            registry=r,
        )
        # Also an addition: how long usage records have waited with the store taking none
        # (0 when none wait), so that an alert sees a stalled ledger whatever its depth.
        self.usage_lag = Gauge(
            "gateway_usage_lag_seconds",
            "Seconds usage records have waited without the usage store taking any.",
            registry=r,
            multiprocess_mode="max",
        )
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}
        self._series: dict[tuple[str, str, str, str, int], _RequestSeries] = {}

    def observe_request(self, record: UsageRecord, *, model_label: str) -> None:
        """Count one finished request from its usage record."""
        team = record.team or ""
        key_id = record.key_id or ""
        key = (record.route, model_label, team, key_id, record.status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _RequestSeries(self, *key)
        series.requests.inc()
        series.duration.observe(record.latency_ms / 1000)
        if record.ttft_ms is not None:
            series.child(_TTFT).observe(record.ttft_ms / 1000)
        if record.input_tokens:
            series.child(_INPUT).inc(record.input_tokens)
        if record.output_tokens:
            series.child(_OUTPUT).inc(record.output_tokens)
        if record.cache_read_tokens:
            series.child(_CACHE_READ).inc(record.cache_read_tokens)
        if record.cache_write_tokens:
            series.child(_CACHE_WRITE).inc(record.cache_write_tokens)
        if record.cost_usd is not None and record.cost_usd > 0:
            series.child(_COST).inc(float(record.cost_usd))

    def inflight_for(self, route: str) -> Any:
        """The `gateway_inflight_requests` gauge of one route label (cached)."""
        return self._child(self.inflight, route)

    def _child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, remembered: `labels()` hashes and locks on every call,
        and a request touches up to eight series. Label values are bounded (config names,
        status codes), so the cache is too."""
        key = (metric._name, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def limits_store_failed(self, store: str) -> None:
        """The limiter's `on_store_error` hook."""
        self.limits_store_errors.labels(store).inc()

    def render(self) -> bytes:
        directory = multiprocess_dir()
        if directory is None:
            return generate_latest(self.registry)
        forget_dead_workers(directory)
        # Multiprocess: every worker's files, aggregated into a throwaway registry.
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


# The series of `_RequestSeries.child`, by index.
_TTFT, _INPUT, _OUTPUT, _CACHE_READ, _CACHE_WRITE, _COST = range(6)


class _RequestSeries:
    """The children `observe_request` touches for one kind of request (route, model,
    team, key, status): one dict look-up per request instead of up to eight `labels()`
    look-ups. The others are made on first use, as before, so that a series appears on
    `/metrics` only once it has counted something. Keys are bounded as the labels are
    (config names, statuses); so is the cache."""

    __slots__ = ("_made", "_metrics", "_specs", "duration", "requests")

    def __init__(
        self, metrics: Metrics, route: str, model: str, team: str, key_id: str, status: int
    ) -> None:
        self._metrics = metrics
        self.requests = metrics._child(metrics.requests, route, model, team, key_id, str(status))
        self.duration = metrics._child(metrics.duration, route, model)
        # (metric, labels) of each lazily made child, in `_TTFT` ... `_COST` order.
        self._specs: tuple[tuple[Any, tuple[str, ...]], ...] = (
            (metrics.ttft, (model,)),
            *(
                (metrics.tokens, (model, team, key_id, kind))
                for kind in ("input", "output", "cache_read", "cache_write")
            ),
            (metrics.cost, (model, team, key_id)),
        )
        self._made: list[Any] = [None] * len(self._specs)

    def child(self, which: int) -> Any:
        made = self._made[which]
        if made is None:
            metric, labels = self._specs[which]
            made = self._made[which] = self._metrics._child(metric, *labels)
        return made


def forget_dead_workers(directory: str) -> None:
    """Drop the live gauges (in-flight requests, queue depth) of worker processes gone.

    A worker that dies without shutting down (OOM kill, SIGKILL) leaves its gauge file
    with the values it last had; uvicorn starts a replacement, but the files are summed by
    name, so the dead worker's in-flight requests would count for ever. Nothing else knows
    the pid of a crashed worker, so the scrape looks: a pid that no longer exists has its
    live gauges removed (`mark_process_dead`). Its counters and histograms stay, because
    what it counted did happen and totals must not go backwards.
    """
    for path in Path(directory).iterdir():
        match = _LIVE_GAUGE_FILE.fullmatch(path.name)
        if match is None or _process_exists(int(match.group(1))):
            continue
        # Another worker's scrape may be removing the same files right now.
        with contextlib.suppress(FileNotFoundError):
            mark_process_dead(int(match.group(1)), directory)  # type: ignore[no-untyped-call]


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only checks that the pid exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
