"""Every billable route through the same stages: one table, every admission rule.

Each row of `ROUTES` is a way to spend money through the gateway. Each test runs all of
them through one rule of the pipeline (no key, allow-list, rpm, tpm, budget, team limits,
overload, one ledger record per request), over real HTTP against the emulator. A surface
that skipped a stage fails here; a new surface joins by adding its row.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import (
    API_KEY,
    RESTRICTED_KEY,
    GatewayFactory,
    RunningGateway,
    base_config,
    ledger,
    script,
    sha,
)


@dataclass(frozen=True)
class RouteCase:
    id: str
    route: str
    body: Callable[[str], dict[str, Any]]  # model name -> request body
    model: str  # a priced model this route serves
    stream: bool = False
    anthropic: bool = False  # errors in Anthropic's shape, "overloaded" as its 529

    def error(self, response: httpx.Response) -> dict[str, Any]:
        """The error object: `{"error": {...}}`, or Anthropic's `{"type": "error", ...}`."""
        body = response.json()
        if self.anthropic:
            assert body["type"] == "error"
        error: dict[str, Any] = body["error"]
        return error

    @property
    def overloaded_status(self) -> int:
        return 529 if self.anthropic else 503


def _chat(stream: bool) -> Callable[[str], dict[str, Any]]:
    def body(model: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "user", "content": script("hi", reply="Hello there!")}],
        }
        if stream:
            data["stream"] = True
        return data

    return body


def _responses(stream: bool) -> Callable[[str], dict[str, Any]]:
    def body(model: str) -> dict[str, Any]:
        data: dict[str, Any] = {"model": model, "input": script("hi", reply="Hello there!")}
        if stream:
            data["stream"] = True
        return data

    return body


def _messages(stream: bool) -> Callable[[str], dict[str, Any]]:
    def body(model: str) -> dict[str, Any]:
        data = _chat(stream)(model)
        data["max_tokens"] = 50
        return data

    return body


ROUTES = [
    RouteCase("chat", "/v1/chat/completions", _chat(False), "claude-3-5-sonnet"),
    RouteCase("chat-stream", "/v1/chat/completions", _chat(True), "claude-3-5-sonnet", True),
    RouteCase("responses", "/v1/responses", _responses(False), "claude-3-5-sonnet"),
    RouteCase("responses-stream", "/v1/responses", _responses(True), "claude-3-5-sonnet", True),
    RouteCase(
        "embeddings",
        "/v1/embeddings",
        lambda model: {"model": model, "input": "a text to embed"},
        "titan-embed-text-v2",
    ),
    # Claude through InvokeModel, and a non-Claude model through Converse.
    RouteCase("messages", "/v1/messages", _messages(False), "claude-3-5-sonnet", anthropic=True),
    RouteCase(
        "messages-stream",
        "/v1/messages",
        _messages(True),
        "claude-3-5-sonnet",
        True,
        anthropic=True,
    ),
    RouteCase("messages-converse", "/v1/messages", _messages(False), "app-profile", anthropic=True),
]

# Prices for every model the table uses, so that budgets can be charged.
PRICED = {"input_per_1k": "0.003", "output_per_1k": "0.015"}


def send(gateway: RunningGateway, case: RouteCase, key: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    with gateway.http() as http:
        response = http.post(case.route, json=case.body(case.model), headers=headers)
        response.read()
    return response


def start(start_gateway: GatewayFactory, **auth: Any) -> RunningGateway:
    """A gateway whose key app1 (team search) has the given limits; every model priced."""
    models = base_config("http://127.0.0.1:9", Path("."))["models"]
    for model in models:
        model.setdefault("pricing", PRICED)
    keys = [
        {"id": "app1", "key_sha256": sha(API_KEY), "team": "search", **auth.get("key", {})},
        {"id": "limited", "key_sha256": sha(RESTRICTED_KEY), "models": ["nova-micro"]},
    ]
    return start_gateway(
        models=models,
        auth={"keys": keys, "teams": auth.get("teams", {})},
        **auth.get("extra", {}),
    )


def requests_metric(gateway: RunningGateway, route: str, status: str) -> float:
    with gateway.http() as http:
        text = http.get("/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("gateway_requests_total{") and (
            f'route="{route}"' in line and f'status="{status}"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def until(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture(params=ROUTES, ids=[case.id for case in ROUTES])
def case(request: pytest.FixtureRequest) -> RouteCase:
    param: RouteCase = request.param
    return param


def test_no_key_is_401_counted_but_not_a_ledger_row(
    start_gateway: GatewayFactory, case: RouteCase
) -> None:
    gateway = start(start_gateway)
    response = send(gateway, case, None)
    assert response.status_code == 401
    assert case.error(response)["type"] == "authentication_error"
    assert requests_metric(gateway, case.route, "401") == 1
    assert send(gateway, case, "sk-wrong").status_code == 401
    assert ledger(gateway) == []


def test_a_model_outside_the_allow_list_is_403(
    start_gateway: GatewayFactory, case: RouteCase
) -> None:
    gateway = start(start_gateway)
    response = send(gateway, case, RESTRICTED_KEY)
    assert response.status_code == 403
    error = case.error(response)
    assert error["type"] == "permission_error" and "not allowed" in error["message"]
    assert case.anthropic or error["code"] == "model_not_allowed"
    (row,) = ledger(gateway)
    assert (row["key_id"], row["status"], row["route"]) == ("limited", 403, case.route)


def test_rpm_is_429_with_retry_after(start_gateway: GatewayFactory, case: RouteCase) -> None:
    gateway = start(start_gateway, key={"rpm": 1})
    assert send(gateway, case, API_KEY).status_code == 200
    refused = send(gateway, case, API_KEY)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert "requests per minute" in case.error(refused)["message"]
    assert [row["status"] for row in ledger(gateway)] == [200, 429]


def test_tpm_is_429_once_the_window_is_spent(
    start_gateway: GatewayFactory, case: RouteCase
) -> None:
    gateway = start(start_gateway, key={"tpm": 1})
    assert send(gateway, case, API_KEY).status_code == 200
    # The first request's tokens are charged just after its response went out.
    assert until(lambda: send(gateway, case, API_KEY).status_code == 429)
    statuses = [row["status"] for row in ledger(gateway)]
    assert statuses[0] == 200 and statuses[-1] == 429


def test_a_spent_monthly_budget_is_429(start_gateway: GatewayFactory, case: RouteCase) -> None:
    gateway = start(
        start_gateway,
        key={"budget_usd_monthly": "0.0000001"},
        extra={"limits": {"spend_cache_s": 0}},
    )
    assert send(gateway, case, API_KEY).status_code == 200
    assert until(lambda: send(gateway, case, API_KEY).status_code == 429)
    rows = ledger(gateway)
    assert rows[0]["cost_e10"] > 0  # the SQLite ledger keeps USD in 1e-10 units
    assert rows[-1]["status"] == 429


def test_team_limits_apply_to_the_team_s_keys(
    start_gateway: GatewayFactory, case: RouteCase
) -> None:
    gateway = start(start_gateway, teams={"search": {"rpm": 1}})
    assert send(gateway, case, API_KEY).status_code == 200
    refused = send(gateway, case, API_KEY)
    assert refused.status_code == 429
    assert "team" in case.error(refused)["message"]


def test_overload_is_503(start_gateway: GatewayFactory, case: RouteCase) -> None:
    gateway = start(start_gateway, extra={"server": {"max_concurrent_requests": 1}})
    holder_body = {
        "model": "claude-3-5-sonnet",
        "messages": [{"role": "user", "content": script("hold", first_token_delay_ms=1500)}],
    }
    done = threading.Event()

    def hold() -> None:
        with gateway.http() as http:
            http.post(
                "/v1/chat/completions",
                json=holder_body,
                headers={"authorization": f"Bearer {API_KEY}"},
            )
        done.set()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        # Wait until the holder has been admitted (it is in flight at Bedrock).
        assert until(lambda: gateway.app.state.gateway.inflight_billable == 1)
        refused = send(gateway, case, API_KEY)
        assert refused.status_code == case.overloaded_status
        assert refused.headers["retry-after"]
    finally:
        holder.join(timeout=10)
    assert done.is_set()
    assert send(gateway, case, API_KEY).status_code == 200


def test_exactly_one_record_per_request_with_route_tokens_and_cost(
    start_gateway: GatewayFactory, case: RouteCase
) -> None:
    gateway = start(start_gateway)
    responses = [send(gateway, case, API_KEY) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    ids = [r.headers["x-request-id"] for r in responses]
    rows = ledger(gateway)
    assert [row["request_id"] for row in rows] == ids
    for row in rows:
        assert (row["route"], row["stream"], row["key_id"]) == (case.route, case.stream, "app1")
        assert row["input_tokens"] > 0 and row["estimated"] == 0
        assert row["cost_e10"] > 0
        if case.id.startswith(("chat", "responses")):
            assert row["output_tokens"] > 0
