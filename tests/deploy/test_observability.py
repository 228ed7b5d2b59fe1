"""The Grafana dashboard and the alert rules query only what the gateway exports.

Metric names and labels come from CONTRACT.md's table (mirrored in metric_names.py); a
renamed metric or label must fail here rather than leave an empty panel or an alert that
can never fire.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.metric_names import (
    ALERTS,
    ALL_METRICS,
    CONTRACT_METRICS,
    DASHBOARD,
    REPO,
    Expression,
    alert_expressions,
    dashboard_expressions,
    metric_names_used,
    names_in,
    series_names,
    strip_strings,
)

# Labels Prometheus adds to every series from the scrape target (kubernetes_sd, the
# Prometheus Operator's relabelling) and prometheus-client's multiprocess `pid`.
TARGET_LABELS = frozenset(
    {"job", "instance", "namespace", "pod", "service", "container", "endpoint", "pid"}
)

# Functions and aggregation operators these files may use.
KNOWN_FUNCTIONS = frozenset(
    {
        "rate", "irate", "increase", "sum", "max", "min", "avg", "count", "topk",
        "histogram_quantile", "sort_desc", "sort", "absent", "absent_over_time", "clamp_min",
        "vector", "time",
    }
)  # fmt: skip

EXPRESSIONS = [*dashboard_expressions(), *alert_expressions()]


def _ids(expressions: list[Expression]) -> list[str]:
    return [e.where for e in expressions]


def _load_dashboard() -> Any:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _load_alerts() -> Any:
    return yaml.safe_load(ALERTS.read_text(encoding="utf-8"))


# --- metric names ------------------------------------------------------------------------


def test_metric_names_used_are_exported_series() -> None:
    used = metric_names_used()
    unknown = used - series_names().keys()
    assert not unknown, f"not series of any contract metric: {sorted(unknown)}"


def test_every_contract_metric_is_on_the_dashboard() -> None:
    """Every metric the gateway exports has a panel: the contract's and the ones beside it
    (ledger lag and refused records, guardrail interventions, region failovers)."""
    on_dashboard = {
        series_names()[name]
        for expression in dashboard_expressions()
        for name in names_in(expression.expr)
        if name in series_names()
    }
    assert on_dashboard == set(ALL_METRICS)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gateway_request_duration_seconds_bucket", "gateway_request_duration_seconds"),
        ("gateway_time_to_first_token_seconds_count", "gateway_time_to_first_token_seconds"),
        ("gateway_requests_total", "gateway_requests_total"),
        ("gateway_usage_queue_depth", "gateway_usage_queue_depth"),
        # Suffix rules must not be applied loosely:
        ("gateway_request_duration_seconds", None),  # a histogram is never exposed bare
        ("gateway_requests", None),  # the counter's sample name carries _total
        ("gateway_requests_total_total", None),
        ("gateway_tokens_total_bucket", None),  # counters have no buckets
        ("gateway_requests_created", None),
        ("gateway_usage_queue_depth_total", None),
    ],
)
def test_series_names_suffix_rules(name: str, expected: str | None) -> None:
    assert series_names().get(name) == expected


def test_names_ignore_label_values_and_target_names() -> None:
    expr = 'up{job=~".*bedrock-gateway.*", x="gateway_fake_total"} + gateway_usage_queue_depth'
    assert names_in(expr) == {"gateway_usage_queue_depth"}


def test_contract_table_matches_contract_md() -> None:
    """metric_names.py mirrors CONTRACT.md; compare when the shared folder is beside the repo."""
    candidates = [REPO.parent / "shared" / "CONTRACT.md", Path("/work/shared/CONTRACT.md")]
    contract = next((p for p in candidates if p.is_file()), None)
    if contract is None:
        pytest.skip("CONTRACT.md not found beside the repository (shared/ folder absent)")
    rows = re.findall(
        r"^\|\s*`(gateway_[a-z0-9_]+)`\s*\|\s*(\w+)\s*\|([^|]*)\|",
        contract.read_text(encoding="utf-8"),
        flags=re.MULTILINE,
    )
    table = {
        name: (kind, frozenset(re.findall(r"[a-z_]+", labels.split("(")[0])))
        for name, kind, labels in rows
    }
    assert table == {name: (spec.type, spec.labels) for name, spec in CONTRACT_METRICS.items()}


# --- PromQL shape -------------------------------------------------------------------------


def _selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(series name, label names matched) for every `gateway_*` selector in expr."""
    found = []
    for match in re.finditer(
        r"(?<![A-Za-z0-9_:])(gateway_[a-z0-9_]+)\s*(\{(?:[^{}\"]|\"(?:[^\"\\]|\\.)*\")*\})?", expr
    ):
        matchers = match.group(2) or "{}"
        labels = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"", matchers))
        found.append((match.group(1), labels))
    return found


def _allowed_labels(series: str) -> frozenset[str]:
    metric = series_names()[series]
    labels = ALL_METRICS[metric].labels | TARGET_LABELS
    return labels | {"le"} if series.endswith("_bucket") else labels


@pytest.mark.parametrize("expression", EXPRESSIONS, ids=_ids(EXPRESSIONS))
def test_selectors_use_contract_labels(expression: Expression) -> None:
    for series, labels in _selectors(expression.expr):
        if series not in series_names():
            continue  # reported by test_metric_names_used_are_exported_series
        extra = labels - _allowed_labels(series)
        assert not extra, f"{series} has no label(s) {sorted(extra)}"


@pytest.mark.parametrize("expression", EXPRESSIONS, ids=_ids(EXPRESSIONS))
def test_grouping_labels_exist(expression: Expression) -> None:
    """`by (...)` may only name labels one of the expression's metrics carries."""
    code = strip_strings(expression.expr)
    available: set[str] = set(TARGET_LABELS)
    for series in names_in(code):
        if series in series_names():
            available |= _allowed_labels(series)
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", code):
        labels = {label.strip() for label in group.split(",") if label.strip()}
        assert labels <= available, f"grouping by unknown label(s) {sorted(labels - available)}"


@pytest.mark.parametrize("expression", EXPRESSIONS, ids=_ids(EXPRESSIONS))
def test_promql_is_well_formed(expression: Expression) -> None:
    code = strip_strings(expression.expr)
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for char in code:
        if char in "([{":
            stack.append(char)
        elif char in pairs:
            assert stack and stack[-1] == pairs[char], f"unbalanced {char!r} in {expression.expr}"
            stack.pop()
    assert not stack, f"unclosed {stack} in {expression.expr}"
    functions = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", code)) - {
        "by",
        "without",
        "on",
        "ignoring",
    }
    assert functions <= KNOWN_FUNCTIONS, (
        f"unexpected function(s) {sorted(functions - KNOWN_FUNCTIONS)}"
    )


@pytest.mark.parametrize("expression", EXPRESSIONS, ids=_ids(EXPRESSIONS))
def test_rate_only_over_counters(expression: Expression) -> None:
    """rate()/increase() of a gauge is meaningless, and a histogram needs its _bucket."""
    code = strip_strings(expression.expr)
    for series in re.findall(r"\b(?:rate|irate|increase)\(\s*(gateway_[a-z0-9_]+)", code):
        kind = ALL_METRICS[series_names()[series]].type
        assert kind in {"counter", "histogram"}, f"{series} is a {kind}"
    for series in re.findall(r"histogram_quantile\([^,]*,.*?(gateway_[a-z0-9_]+)", code):
        assert series.endswith("_bucket"), f"histogram_quantile over {series}"


# --- dashboard ----------------------------------------------------------------------------


def _all_panels(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for item in items for p in (item, *_all_panels(item.get("panels", [])))]


def test_dashboard_shape() -> None:
    dashboard = _load_dashboard()
    assert dashboard["uid"] == "bedrock-gateway"
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    for name in ("team", "key_id"):
        assert variables[name]["type"] == "query"
        assert variables[name]["multi"] and variables[name]["includeAll"]
        assert variables[name]["allValue"] == ".*"  # so that series with an empty label match

    panels = _all_panels(dashboard["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel[
            "title"
        ]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]


def test_dashboard_panels_do_not_overlap() -> None:
    occupied: dict[tuple[int, int], str] = {}
    for panel in _all_panels(_load_dashboard()["panels"]):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in occupied, f"{panel['title']!r} overlaps {occupied[(x, y)]!r}"
                occupied[(x, y)] = panel["title"]


def _dashboard_exprs() -> str:
    return "\n".join(e.expr for e in dashboard_expressions())


@pytest.mark.parametrize(
    ("what", "pattern"),
    [
        ("tokens per team by type", r"sum by \(team, type\) \(rate\(gateway_tokens_total"),
        ("tokens per key by type", r"sum by \(key_id, type\) \(rate\(gateway_tokens_total"),
        ("cost per team", r"sum by \(team\) \(increase\(gateway_cost_usd_total"),
        ("cost per key", r"sum by \(key_id\) \(increase\(gateway_cost_usd_total"),
        ("requests by status", r"sum by \(status\) \(rate\(gateway_requests_total"),
        ("p95 latency", r"histogram_quantile\(0\.95, .*gateway_request_duration_seconds_bucket"),
        ("p50 latency", r"histogram_quantile\(0\.5, .*gateway_request_duration_seconds_bucket"),
        ("p95 ttft", r"histogram_quantile\(0\.95, .*gateway_time_to_first_token_seconds_bucket"),
        ("p50 ttft", r"histogram_quantile\(0\.5, .*gateway_time_to_first_token_seconds_bucket"),
        ("bedrock throttling", r'gateway_upstream_errors_total\{error="ThrottlingException"'),
        ("429s", r'gateway_requests_total\{[^}]*status="429"'),
        ("usage queue", r"gateway_usage_queue_depth"),
        ("inflight", r"gateway_inflight_requests"),
        ("guardrail interventions", r"gateway_guardrail_interventions_total"),
        ("region failovers", r"gateway_region_failovers_total"),
        ("ledger lag", r"gateway_usage_lag_seconds"),
        ("dead letters", r"gateway_usage_dead_letters_total"),
        ("team filter", r'team=~"\$team"'),
        ("key filter", r'key_id=~"\$key_id"'),
    ],
)
def test_dashboard_has_panel_for(what: str, pattern: str) -> None:
    assert re.search(pattern, _dashboard_exprs()), what


# --- alert rules --------------------------------------------------------------------------


def test_alert_rules_shape() -> None:
    document = _load_alerts()
    assert set(document) == {"groups"}
    names: set[str] = set()
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"}
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
            assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"])
            assert rule["alert"] not in names, f"duplicate alert {rule['alert']}"
            names.add(rule["alert"])
            assert re.fullmatch(r"\d+[smhdwy]", rule["for"]), rule["alert"]
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
            assert rule["annotations"]["summary"].strip(), rule["alert"]
            assert rule["annotations"]["description"].strip(), rule["alert"]
            for text in (*rule["labels"].values(), *rule["annotations"].values()):
                assert text.count("{{") == text.count("}}"), rule["alert"]


@pytest.mark.parametrize(
    ("what", "pattern"),
    [
        ("high 5xx rate", r'gateway_requests_total\{status=~"5\.\."\}'),
        ("sustained throttling", r'gateway_upstream_errors_total\{error="ThrottlingException"\}'),
        ("usage queue backing up", r"gateway_usage_queue_depth\) > \d+"),
        ("usage ledger behind", r"gateway_usage_lag_seconds\) > \d+"),
        ("usage records refused", r"increase\(gateway_usage_dead_letters_total\[\d+[mh]\]\)"),
        (
            "no successful requests",
            r'unless\s+sum by \(namespace, job\) \(rate\(gateway_requests_total\{status=~"2\.\."\}',
        ),
        ("gateway down", r"up\{job=~\"[^\"]*bedrock-gateway[^\"]*\"\} == 0"),
    ],
)
def test_alert_exists_for(what: str, pattern: str) -> None:
    exprs = "\n".join(e.expr for e in alert_expressions())
    assert re.search(pattern, exprs), what


def test_prometheus_rule_resource_matches_rule_file() -> None:
    resource = yaml.safe_load((REPO / "deploy" / "kubernetes" / "prometheusrule.yaml").read_text())
    assert resource["apiVersion"] == "monitoring.coreos.com/v1"
    assert resource["kind"] == "PrometheusRule"
    assert resource["spec"]["groups"] == _load_alerts()["groups"]
