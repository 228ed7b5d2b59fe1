"""`GET /v1/usage` and the usage records behind it: who sees what, in which shape."""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from decimal import Decimal
from typing import Any

import pytest

from tests.fullpath.conftest import (
    ADMIN_KEY,
    API_KEY,
    OTHER_KEY,
    GatewayFactory,
    RunningGateway,
    ledger,
    script,
)


def chat(
    gateway: RunningGateway, key: str, usage: dict[str, int], model: str = "claude-3-5-sonnet"
) -> None:
    gateway.client(key).chat.completions.create(
        model=model, messages=[{"role": "user", "content": script(usage=usage)}]
    )


def usage(gateway: RunningGateway, key: str, **params: str) -> Any:
    with gateway.http() as http:
        return http.get("/v1/usage", params=params, headers={"authorization": f"Bearer {key}"})


def wait_for_rows(gateway: RunningGateway, count: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        data = usage(gateway, ADMIN_KEY, group_by="key_id").json()["data"]
        if sum(row["requests"] for row in data) >= count:
            return
        time.sleep(0.05)
    raise AssertionError("usage records were not flushed in time")


def test_usage_api_scopes_and_shapes(gateway: RunningGateway) -> None:
    chat(gateway, API_KEY, {"inputTokens": 100, "outputTokens": 10})
    chat(gateway, API_KEY, {"inputTokens": 50, "outputTokens": 5, "cacheReadInputTokens": 1000})
    chat(gateway, OTHER_KEY, {"inputTokens": 7, "outputTokens": 3}, model="nova-micro")
    wait_for_rows(gateway, 3)

    mine = usage(gateway, API_KEY, group_by="team,model").json()
    assert mine["object"] == "list" and mine["group_by"] == ["team", "model"]
    assert mine["data"] == [
        {
            "team": "search",
            "model": "claude-3-5-sonnet",
            "requests": 2,
            "input_tokens": 150,
            "output_tokens": 15,
            "cache_read_tokens": 1000,
            "cache_write_tokens": 0,
            "cache_write_1h_tokens": 0,
            # (150 * 0.003 + 15 * 0.015 + 1000 * 0.0003) / 1000, from the configured prices
            "cost_usd": pytest.approx(float(Decimal("0.000975"))),
        }
    ]
    everyone = usage(gateway, ADMIN_KEY, group_by="key_id").json()["data"]
    assert {row["key_id"]: row["requests"] for row in everyone} == {"app1": 2, "app2": 1}

    as_csv = usage(gateway, ADMIN_KEY, group_by="team", format="csv")
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert {row["team"]: int(row["input_tokens"]) for row in rows} == {"search": 150, "ads": 7}


def test_usage_api_time_range_and_bad_parameters(gateway: RunningGateway) -> None:
    chat(gateway, API_KEY, {"inputTokens": 1, "outputTokens": 1})
    wait_for_rows(gateway, 1)
    future = usage(gateway, API_KEY, start="2999-01-01").json()
    assert future["data"] == [] and future["start"].startswith("2999-01-01")
    for params, param in [
        ({"group_by": "team,password"}, "group_by"),
        ({"start": "yesterday"}, "start"),
        ({"start": "2026-02-01", "end": "2026-01-01"}, "start"),
        ({"format": "xml"}, "format"),
    ]:
        response = usage(gateway, API_KEY, **params)
        assert response.status_code == 400, params
        assert response.json()["error"]["param"] == param


def test_usage_api_needs_a_key(gateway: RunningGateway) -> None:
    with gateway.http() as http:
        assert http.get("/v1/usage").status_code == 401


def test_every_request_of_a_key_is_recorded_once_even_4xx(gateway: RunningGateway) -> None:
    """A request of a known key is one ledger row, whatever its status; one without a
    valid key belongs to nobody and bills nothing, so it is not a row (issue 14)."""
    client = gateway.client()
    client.chat.completions.create(
        model="nova-micro", messages=[{"role": "user", "content": "ok"}], user="eu-1"
    )
    with gateway.http() as http:
        bad = http.post(
            "/v1/chat/completions",
            json={"model": "nova-micro", "messages": [], "seed": 1},
            headers={"authorization": f"Bearer {API_KEY}"},
        )
        unauth = http.post("/v1/chat/completions", json={"model": "nova-micro"})
        http.get("/v1/models", headers={"authorization": f"Bearer {API_KEY}"})  # not billable
    assert (bad.status_code, unauth.status_code) == (400, 401)
    records = ledger(gateway)
    assert [(r["status"], r["key_id"]) for r in records] == [(200, "app1"), (400, "app1")]
    ok, invalid = records
    assert ok["end_user"] == "eu-1" and ok["team"] == "search" and ok["user"] == "alice"
    assert ok["model"] == "nova-micro" and ok["bedrock_model_id"] == "amazon.nova-micro-v1:0"
    assert invalid["input_tokens"] == invalid["output_tokens"] == 0
    assert invalid["error_type"] == "invalid_request_error"
    assert len({r["id"] for r in records}) == 2 and len({r["request_id"] for r in records}) == 2
    assert all(json.loads(json.dumps(r)) for r in records)


def test_log_prompts_puts_prompt_and_completion_in_the_access_line(
    start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = start_gateway(logging={"format": "json", "log_prompts": True})
    client = gateway.client()
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        client.chat.completions.create(
            model="nova-micro", messages=[{"role": "user", "content": "secret plan"}]
        )
        for _ in client.chat.completions.create(
            model="nova-micro", messages=[{"role": "user", "content": "streamed plan"}], stream=True
        ):
            pass
        client.embeddings.create(model="titan-embed-text-v2", input="embedded plan")
        ledger(gateway)  # stop: every access line has been written
    lines = [r for r in caplog.records if r.name == "gateway.access"]
    fields = [(r.prompt, r.completion if hasattr(r, "completion") else None) for r in lines]  # type: ignore[attr-defined]
    assert fields == [
        ([{"role": "user", "content": "secret plan"}], "You said: secret plan"),
        ([{"role": "user", "content": "streamed plan"}], "You said: streamed plan"),
        (["embedded plan"], None),
    ]
    assert all(API_KEY not in r.getMessage() and API_KEY not in str(r.__dict__) for r in lines)


def test_usage_groups_by_route_and_status(gateway: RunningGateway) -> None:
    client = gateway.client()
    client.chat.completions.create(model="nova-micro", messages=[{"role": "user", "content": "a"}])
    client.embeddings.create(model="titan-embed-text-v2", input="b")
    with gateway.http() as http:
        http.post(
            "/v1/chat/completions",
            json={"model": "nova-micro", "messages": []},
            headers={"authorization": f"Bearer {API_KEY}"},
        )
    wait_for_rows(gateway, 3)
    response = usage(gateway, ADMIN_KEY, group_by="route,status")
    assert response.status_code == 200, response.text
    rows = {(row["route"], row["status"]): row["requests"] for row in response.json()["data"]}
    assert rows == {
        ("/v1/chat/completions", 200): 1,
        ("/v1/chat/completions", 400): 1,
        ("/v1/embeddings", 200): 1,
    }
