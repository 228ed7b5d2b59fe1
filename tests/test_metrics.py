"""`/metrics` is CONTRACT.md's table, and its numbers are the traffic that was driven.

Requests go through the whole path (the `openai` SDK or httpx -> the gateway over HTTP ->
aiobotocore -> the emulator); the scrape is parsed with prometheus-client's own parser,
so a malformed exposition fails here too. Each scripted request says exactly how many
tokens Bedrock reports, so the counters must match those numbers exactly, and the label
values must stay within what the config names: a caller controls the `model` string and
the URL, never the number of series.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import defaultdict
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.metric_names import CONTRACT_METRICS
from tests.harness import (
    API_KEY,
    OTHER_KEY,
    GatewayFactory,
    RunningGateway,
    ledger,
    script,
)

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
WRONG_KEY = "sk-test-not-a-configured-key"

# The prices `base_config` gives claude-3-5-sonnet, per 1,000 tokens.
SONNET_PRICES = {
    "input": Decimal("0.003"),
    "output": Decimal("0.015"),
    "cache_read": Decimal("0.0003"),
    "cache_write": Decimal("0.00375"),
}

# What Bedrock (the emulator) is scripted to report for the two successful chat requests.
NON_STREAM_USAGE = {
    "inputTokens": 120,
    "outputTokens": 45,
    "cacheReadInputTokens": 300,
    "cacheWriteInputTokens": 80,
}
STREAM_USAGE = {"inputTokens": 30, "outputTokens": 5}
EMBEDDING_TEXT = "x" * 40  # the emulator counts ceil(40 / 4) = 10 tokens
FIRST_TOKEN_DELAY_S = 0.08


def scrape(gateway: RunningGateway) -> tuple[str, dict[str, Metric]]:
    """The raw exposition and its families, keyed by the name CONTRACT.md uses."""
    text = httpx.get(gateway.url + gateway.config.metrics.path, timeout=10).text
    families: dict[str, Metric] = {}
    for family in text_string_to_metric_families(text):
        # The parser strips `_total` from counter family names; the contract keeps it.
        name = family.name + "_total" if family.type == "counter" else family.name
        families[name] = family
    return text, families


def values(family: Metric, sample_name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """Sample values of one series kind (e.g. `..._count`), keyed by the given labels."""
    return {
        tuple(sample.labels[label] for label in labels): sample.value
        for sample in family.samples
        if sample.name == sample_name
    }


def settled_scrape(gateway: RunningGateway) -> tuple[str, dict[str, Metric]]:
    """A scrape taken once the usage recorder has written everything (queue depth 0)."""
    deadline = time.monotonic() + 10
    while True:
        text, families = scrape(gateway)
        depth = families["gateway_usage_queue_depth"].samples[0].value
        if depth == 0 or time.monotonic() > deadline:
            return text, families
        time.sleep(0.05)


def drive_contract_traffic(gateway: RunningGateway) -> None:
    """One of each kind of request the table has to account for."""
    search = gateway.client(API_KEY)
    ads = gateway.client(OTHER_KEY)
    search.chat.completions.create(
        model="claude-3-5-sonnet",
        messages=[{"role": "user", "content": script("hello", usage=NON_STREAM_USAGE)}],
    )
    stream = search.chat.completions.create(
        model="gpt-4o",  # an alias: counted under the config name
        messages=[
            {
                "role": "user",
                "content": script(
                    reply="one two three four five",
                    usage=STREAM_USAGE,
                    first_token_delay_ms=FIRST_TOKEN_DELAY_S * 1000,
                ),
            }
        ],
        stream=True,
        stream_options={"include_usage": True},
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == (
        "one two three four five"
    )
    with pytest.raises(openai.RateLimitError):
        ads.chat.completions.create(
            model="claude-3-5-sonnet",
            messages=[{"role": "user", "content": script(error="ThrottlingException")}],
        )
    embedded = ads.embeddings.create(model="titan-embed-text-v2", input=EMBEDDING_TEXT)
    assert embedded.usage.prompt_tokens == 10
    with pytest.raises(openai.AuthenticationError):
        gateway.client(WRONG_KEY).chat.completions.create(
            model="claude-3-5-sonnet", messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(openai.NotFoundError):
        search.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
    garbage = httpx.post(
        gateway.url + CHAT,
        headers={"authorization": f"Bearer {API_KEY}"},
        json={"model": "claude-3-5-sonnet", "messages": "not a list", "temperature": "hot"},
        timeout=10,
    )
    assert garbage.status_code == 400


def sonnet_cost(tokens: dict[str, int]) -> Decimal:
    return sum((count * SONNET_PRICES[kind] for kind, count in tokens.items()), Decimal(0)) / 1000


def test_every_contract_metric_has_its_type_and_labels(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway()
    drive_contract_traffic(gateway)
    _, families = settled_scrape(gateway)

    for name, spec in CONTRACT_METRICS.items():
        assert name in families, f"{name} is not exported"
        family = families[name]
        assert family.type == spec.type, name
        assert family.samples, f"{name} has no series after the traffic"
        for sample in family.samples:
            labels = set(sample.labels) - {"le"}
            assert labels == spec.labels, (name, sample)


def test_counters_equal_the_traffic_driven(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway()
    drive_contract_traffic(gateway)
    _, families = settled_scrape(gateway)

    requests = values(
        families["gateway_requests_total"],
        "gateway_requests_total",
        "route", "model", "team", "key_id", "status",
    )  # fmt: skip
    assert requests == {
        (CHAT, "claude-3-5-sonnet", "search", "app1", "200"): 2,
        (CHAT, "claude-3-5-sonnet", "ads", "app2", "429"): 1,
        (EMBEDDINGS, "titan-embed-text-v2", "ads", "app2", "200"): 1,
        # Refused before any model was resolved: the bounded stand-in, and no key or team.
        (CHAT, "unknown", "", "", "401"): 1,
        (CHAT, "unknown", "search", "app1", "404"): 1,
        (CHAT, "unknown", "search", "app1", "400"): 1,
    }

    tokens = values(
        families["gateway_tokens_total"], "gateway_tokens_total", "model", "team", "key_id", "type"
    )
    sonnet = {
        "input": NON_STREAM_USAGE["inputTokens"] + STREAM_USAGE["inputTokens"],
        "output": NON_STREAM_USAGE["outputTokens"] + STREAM_USAGE["outputTokens"],
        "cache_read": NON_STREAM_USAGE["cacheReadInputTokens"],
        "cache_write": NON_STREAM_USAGE["cacheWriteInputTokens"],
    }
    assert tokens == {
        **{("claude-3-5-sonnet", "search", "app1", kind): n for kind, n in sonnet.items()},
        ("titan-embed-text-v2", "ads", "app2", "input"): 10,
    }

    errors = values(
        families["gateway_upstream_errors_total"], "gateway_upstream_errors_total", "model", "error"
    )
    assert errors == {("claude-3-5-sonnet", "ThrottlingException"): 1}

    # Cost: the configured prices times the tokens, and the same as the ledger says.
    records = ledger(gateway)  # stops the gateway; the scrape above is final
    cost = values(
        families["gateway_cost_usd_total"], "gateway_cost_usd_total", "model", "team", "key_id"
    )
    ledger_cost: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for record in records:
        if record["cost_e10"]:
            key = (record["model"], record["team"], record["key_id"])
            ledger_cost[key] += Decimal(record["cost_e10"]).scaleb(-10)
    assert ledger_cost[("claude-3-5-sonnet", "search", "app1")] == sonnet_cost(sonnet)
    assert set(cost) == set(ledger_cost)
    for key, expected in ledger_cost.items():
        assert cost[key] == pytest.approx(float(expected), rel=1e-12), key


def test_histograms_count_every_request_and_time_the_first_token(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway()
    drive_contract_traffic(gateway)
    _, families = settled_scrape(gateway)

    duration = families["gateway_request_duration_seconds"]
    counts = values(duration, "gateway_request_duration_seconds_count", "route", "model")
    assert counts == {
        (CHAT, "claude-3-5-sonnet"): 3,
        (EMBEDDINGS, "titan-embed-text-v2"): 1,
        (CHAT, "unknown"): 3,
    }
    infinite = values(duration, "gateway_request_duration_seconds_bucket", "route", "model", "le")
    for (route, model), count in counts.items():
        assert infinite[(route, model, "+Inf")] == count

    # Only the stream has a first token; the scripted pause is a lower bound on its time.
    ttft = families["gateway_time_to_first_token_seconds"]
    assert values(ttft, "gateway_time_to_first_token_seconds_count", "model") == {
        ("claude-3-5-sonnet",): 1
    }
    (ttft_sum,) = values(ttft, "gateway_time_to_first_token_seconds_sum", "model").values()
    assert FIRST_TOKEN_DELAY_S <= ttft_sum < 5


def test_gauges_return_to_idle(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway()
    drive_contract_traffic(gateway)
    _, families = settled_scrape(gateway)

    (depth,) = families["gateway_usage_queue_depth"].samples
    assert depth.labels == {} and depth.value == 0
    inflight = values(families["gateway_inflight_requests"], "gateway_inflight_requests", "route")
    # Nothing is being served but the scrape itself.
    assert inflight[(CHAT,)] == 0 and inflight[(EMBEDDINGS,)] == 0
    assert sum(inflight.values()) == 1


def test_model_labels_stay_within_the_config(start_gateway: GatewayFactory) -> None:
    """Whatever `model` a caller sends, the label is a config name, `unknown` or `unlisted`."""
    gateway = start_gateway(allow_unlisted_models=True)
    client = gateway.client()
    # Passed through to Bedrock (allowed here), all counted under one label.
    invented = [f"vendor.invented-{uuid.uuid4().hex[:8]}-v1:0" for _ in range(3)]
    invented.append("y" * 2000)  # Bedrock takes model ids up to 2,048 characters
    for model in invented:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    garbage_models: list[Any] = [123, {"a": "b"}, ["x"], "", None]
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        for model in garbage_models:
            response = http.post(
                CHAT,
                headers={"authorization": f"Bearer {API_KEY}"},
                json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
            )
            assert 400 <= response.status_code < 500, repr(model)[:50]
    text, families = settled_scrape(gateway)

    allowed = {model.name for model in gateway.config.models} | {"unknown", "unlisted"}
    for name, family in families.items():
        for sample in family.samples:
            if "model" in sample.labels:
                assert sample.labels["model"] in allowed, (name, sample)
    for model in invented:
        assert model not in text
    requests = values(
        families["gateway_requests_total"], "gateway_requests_total", "model", "status"
    )
    assert requests[("unlisted", "200")] == len(invented)
    assert sum(n for (model, _), n in requests.items() if model == "unknown") == len(garbage_models)


def test_route_labels_stay_within_the_route_table(start_gateway: GatewayFactory) -> None:
    """Any URL can be requested; only the fixed routes get a label of their own."""
    gateway = start_gateway()
    with httpx.Client(
        base_url=gateway.url, headers={"authorization": f"Bearer {API_KEY}"}, timeout=10
    ) as http:
        for _ in range(3):
            assert http.get(f"/v1/models/made-up-{uuid.uuid4().hex}").status_code == 404
            assert http.post(f"/v1/made-up-{uuid.uuid4().hex}", json={}).status_code == 404
    _, families = scrape(gateway)

    routes = {sample.labels["route"] for sample in families["gateway_inflight_requests"].samples}
    assert routes <= {CHAT, EMBEDDINGS, "/v1/models", "/v1/usage", "other"}


def test_keys_never_appear_in_the_scrape(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway()
    drive_contract_traffic(gateway)
    text, _ = settled_scrape(gateway)
    for key in (API_KEY, OTHER_KEY, WRONG_KEY):
        assert key not in text
        assert hashlib.sha256(key.encode()).hexdigest() not in text
    assert "key_id=" in text  # the check above looked at the labelled series
