"""Which Prometheus series the shipped dashboard and alert rules query.

`metric_names_used()` reads deploy/grafana/bedrock-gateway.json and
deploy/prometheus/alerts.yaml and returns the `gateway_*` series names their PromQL
mentions, exactly as they appear in the /metrics exposition: counters with their `_total`
name, histograms as `_bucket`, `_sum` or `_count`, gauges bare. A test that scrapes a
running gateway can check each of them against the live /metrics text.

`CONTRACT_METRICS` is the table of CONTRACT.md ("Prometheus metrics"); `series_names()`
expands it to the names the exposition format gives each metric.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "bedrock-gateway.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yaml"


@dataclass(frozen=True)
class MetricSpec:
    type: str  # counter | gauge | histogram
    labels: frozenset[str]


# CONTRACT.md, "Prometheus metrics". Counter names already end in `_total`.
CONTRACT_METRICS: dict[str, MetricSpec] = {
    "gateway_requests_total": MetricSpec(
        "counter", frozenset({"route", "model", "team", "key_id", "status"})
    ),
    "gateway_tokens_total": MetricSpec("counter", frozenset({"model", "team", "key_id", "type"})),
    "gateway_cost_usd_total": MetricSpec("counter", frozenset({"model", "team", "key_id"})),
    "gateway_request_duration_seconds": MetricSpec("histogram", frozenset({"route", "model"})),
    "gateway_time_to_first_token_seconds": MetricSpec("histogram", frozenset({"model"})),
    "gateway_upstream_errors_total": MetricSpec("counter", frozenset({"model", "error"})),
    "gateway_inflight_requests": MetricSpec("gauge", frozenset({"route"})),
    "gateway_usage_queue_depth": MetricSpec("gauge", frozenset()),
}

# Exported beside the contract's table (documented where they are defined, in
# gateway/metrics.py), which the alert rules may use too.
EXTRA_METRICS: dict[str, MetricSpec] = {
    "gateway_usage_dead_letters_total": MetricSpec("counter", frozenset()),
    "gateway_usage_lag_seconds": MetricSpec("gauge", frozenset()),
    # CONTRACT.md version 2, "Governance" (named in its text, not in the v1 table above).
    "gateway_guardrail_interventions_total": MetricSpec(
        "counter", frozenset({"model", "team", "guardrail"})
    ),
    "gateway_region_failovers_total": MetricSpec(
        "counter", frozenset({"model", "from_region", "to_region"})
    ),
}
ALL_METRICS: dict[str, MetricSpec] = {**CONTRACT_METRICS, **EXTRA_METRICS}

# Counted only where their feature is configured and used (a guardrail intervened), so a
# gateway without it exports no series of theirs: a live scrape may lack them.
WHEN_USED: frozenset[str] = frozenset(
    {"gateway_guardrail_interventions_total", "gateway_region_failovers_total"}
)

_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def series_names() -> dict[str, str]:
    """Every series name the contract's metrics expose, mapped to its contract metric.

    A histogram `h` is exposed only as `h_bucket`, `h_sum` and `h_count` (never bare); a
    counter and a gauge under their own name. prometheus-client also exposes
    `<counter>_created`, which nothing here should query.
    """
    names: dict[str, str] = {}
    for name, spec in ALL_METRICS.items():
        if spec.type == "histogram":
            for suffix in _HISTOGRAM_SUFFIXES:
                names[name + suffix] = name
        else:
            names[name] = name
    return names


@dataclass(frozen=True)
class Expression:
    where: str  # e.g. "dashboard panel 'Cost by team' A" or "alert BedrockGatewayDown"
    expr: str


def _panels(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """All panels, including those nested in collapsed rows."""
    found: list[dict[str, Any]] = []
    for panel in items:
        found.append(panel)
        found.extend(_panels(panel.get("panels", [])))
    return found


def dashboard_expressions(path: Path = DASHBOARD) -> list[Expression]:
    """The PromQL of every panel target and every query variable of the dashboard."""
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    found: list[Expression] = []
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if "expr" in target:
                where = f"dashboard panel {panel.get('title')!r} {target.get('refId')}"
                found.append(Expression(where, target["expr"]))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        # Grafana's label_values(selector, label): the selector part is PromQL.
        match = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", text)
        expr = match.group(1) if match else text
        found.append(Expression(f"dashboard variable {variable.get('name')!r}", expr))
    return found


def alert_expressions(path: Path = ALERTS) -> list[Expression]:
    """The `expr` of every alerting and recording rule."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    found: list[Expression] = []
    for group in document.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert") or rule.get("record")
            found.append(Expression(f"rule {name}", str(rule["expr"])))
    return found


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_METRIC = re.compile(r"(?<![A-Za-z0-9_:])gateway_[a-z0-9_]+(?![A-Za-z0-9_:])")


def strip_strings(expr: str) -> str:
    """PromQL with string literals blanked, so label values never look like metric names."""
    return _STRING.sub('""', expr)


def names_in(expr: str) -> set[str]:
    """The `gateway_*` metric names one PromQL expression refers to."""
    return set(_METRIC.findall(strip_strings(expr)))


def metric_names_used() -> set[str]:
    """Every `gateway_*` series name queried by the dashboard and the alert rules."""
    names: set[str] = set()
    for expression in (*dashboard_expressions(), *alert_expressions()):
        names |= names_in(expression.expr)
    return names
