"""The dashboard and the alert rules query series the running gateway really exports.

test_observability.py holds the PromQL against CONTRACT.md's table; this holds it against
a live `/metrics` after traffic that creates every labelled series (a success, a stream
with a first token, a Bedrock throttle, a Bedrock failure, a refused key, an embedding).
A renamed metric, a suffix prometheus-client adds differently than the queries assume
(`_total`, `_bucket`), or a label value no request ever produces would leave a panel
empty or an alert unable to fire; each of those fails here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
import openai
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gateway.app import create_app
from gateway.config import GatewayConfig
from tests.deploy.metric_names import (
    WHEN_USED,
    Expression,
    alert_expressions,
    dashboard_expressions,
    metric_names_used,
    series_names,
)
from tests.harness import RunningGateway, base_config, script
from tests.servers import ServerThread


@dataclass(frozen=True)
class _Credentials:
    access_key: str = "test"
    secret_key: str = "test"


# `name{matchers}`; matchers are `label op "value"`, with PromQL's four operators.
_SELECTOR = re.compile(r"(?<![A-Za-z0-9_:])(gateway_[a-z0-9_]+)\s*(?:\{([^}]*)\})?")
_BY = re.compile(r"\bby\s*\(([^)]*)\)")
# Added by Prometheus from the scrape target, never by the gateway itself.
_TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod", "service", "container"})
_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


def drive_traffic(gateway: RunningGateway) -> None:
    client = gateway.client()
    client.chat.completions.create(
        model="claude-3-5-sonnet",
        messages=[{"role": "user", "content": script(usage={"cacheReadInputTokens": 5})}],
    )
    chunks = client.chat.completions.create(
        model="claude-3-5-sonnet",
        messages=[{"role": "user", "content": script(reply="a b c", first_token_delay_ms=10)}],
        stream=True,
    )
    assert [c for c in chunks]
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="claude-3-5-sonnet",
            messages=[{"role": "user", "content": script(error="ThrottlingException")}],
        )
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="nova-micro",
            messages=[{"role": "user", "content": script(error="InternalServerException")}],
        )
    with pytest.raises(openai.AuthenticationError):
        gateway.client("sk-not-a-key").chat.completions.create(
            model="nova-micro", messages=[{"role": "user", "content": "hi"}]
        )
    client.embeddings.create(model="titan-embed-text-v2", input="hello")


def live_samples(gateway: RunningGateway) -> list[Sample]:
    text = httpx.get(gateway.url + gateway.config.metrics.path, timeout=10).text
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def _matches(sample: Sample, matchers: list[tuple[str, str, str]]) -> bool:
    for label, op, value in matchers:
        actual = sample.labels.get(label, "")
        if op == "=" and actual != value:
            return False
        if op == "!=" and actual == value:
            return False
        if op in ("=~", "!~") and bool(re.fullmatch(value, actual)) != (op == "=~"):
            return False
    return True


def selectors(expression: Expression) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """Each `gateway_*` selector: its name and the matchers that name no dashboard variable.

    `$team`-style variables stand for whatever the user picks (`.*` by default), so only
    fixed values are checked against the live series.
    """
    found = []
    for name, body in _SELECTOR.findall(expression.expr):
        matchers = [m for m in _MATCHER.findall(body or "") if "$" not in m[2]]
        found.append((name, matchers))
    return found


@pytest.fixture(scope="module")
def samples(emulator: ServerThread, tmp_path_factory: pytest.TempPathFactory) -> list[Sample]:
    """One gateway, one round of traffic, one scrape, for every check in this module."""
    config = GatewayConfig.model_validate(
        base_config(emulator.url, tmp_path_factory.mktemp("live-metrics"))
    )
    app = create_app(config, registry=CollectorRegistry(), credentials=_Credentials())
    gateway = RunningGateway(server=ServerThread(app), app=app, config=config)
    try:
        drive_traffic(gateway)
        return live_samples(gateway)
    finally:
        gateway.server.stop()


def test_every_queried_name_is_exported(samples: list[Sample]) -> None:
    exported = {sample.name for sample in samples}
    used = metric_names_used()
    assert used, "the dashboard and alerts query no gateway_* series at all"
    # Series of features this traffic does not use (guardrails, regions) cannot be live
    # here; their names and labels are checked against gateway/metrics.py instead.
    expected = {name for name in used if series_names().get(name, name) not in WHEN_USED}
    assert expected <= exported, f"queried but not exported: {sorted(expected - exported)}"


def test_every_contract_series_is_exported_under_its_exposition_name(
    samples: list[Sample],
) -> None:
    """Histograms as `_bucket`, `_sum` and `_count`; counters with `_total`; gauges bare."""
    exported = {sample.name for sample in samples}
    expected = {series for series, metric in series_names().items() if metric not in WHEN_USED}
    assert expected <= exported, f"missing: {sorted(expected - exported)}"


@pytest.mark.parametrize(
    "expression",
    [*dashboard_expressions(), *alert_expressions()],
    ids=lambda e: e.where,
)
def test_every_fixed_matcher_selects_live_series(
    expression: Expression, samples: list[Sample]
) -> None:
    for name, matchers in selectors(expression):
        if series_names().get(name, name) in WHEN_USED:
            continue
        candidates = [s for s in samples if s.name == name]
        assert candidates, f"{name} is not exported"
        assert any(_matches(s, matchers) for s in candidates), (name, matchers)


@pytest.mark.parametrize(
    "expression",
    [*dashboard_expressions(), *alert_expressions()],
    ids=lambda e: e.where,
)
def test_every_grouping_label_is_on_live_series(
    expression: Expression, samples: list[Sample]
) -> None:
    names = {name for name, _ in selectors(expression)}
    if all(series_names().get(name, name) in WHEN_USED for name in names):
        pytest.skip("a series only a configured feature (guardrails, regions) exports")
    labels = {label for s in samples if s.name in names for label in s.labels}
    for clause in _BY.findall(expression.expr):
        grouped = {label.strip() for label in clause.split(",") if label.strip()}
        assert grouped - _TARGET_LABELS <= labels, (clause, sorted(labels))
