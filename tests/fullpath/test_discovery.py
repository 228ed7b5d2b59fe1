"""`bedrock.discover`, end to end: the gateway lists the emulated account's models and
profiles (real aiobotocore, `bedrock` control plane at AWS_ENDPOINT_URL_BEDROCK), offers
them in `/v1/models` and on every route, and picks up a new model without a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client import CollectorRegistry

from gateway.app import create_app
from gateway.config import GatewayConfig
from gateway.emulator.app import BedrockEmulator, create_emulator_app
from tests.harness import API_KEY, Credentials, base_config, sha
from tests.servers import ServerThread, serve

SONNET_PROFILE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
BUDGET_KEY = "sk-test-budgeted-carol-0123456789abcdef"


@pytest.fixture
def emulated() -> Iterator[tuple[BedrockEmulator, ServerThread]]:
    app = create_emulator_app()
    with serve(app) as server:
        yield app, server


@pytest.fixture
def gateway(
    emulated: tuple[BedrockEmulator, ServerThread],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ServerThread]:
    _, emulator = emulated
    # The control plane is found as any boto3 program finds it.
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK", emulator.url)
    data = base_config(emulator.url, tmp_path)
    data["bedrock"]["discover"] = {"enabled": True, "interval_s": 0.2}
    data["auth"]["keys"].append(
        {"id": "budgeted", "key_sha256": sha(BUDGET_KEY), "budget_usd_monthly": 10}
    )
    config = GatewayConfig.model_validate(data)
    app = create_app(config, registry=CollectorRegistry(), credentials=Credentials())
    server = ServerThread(app)
    yield server
    server.stop()


def _models(gateway: ServerThread) -> dict[str, dict[str, Any]]:
    answer = httpx.get(
        gateway.url + "/v1/models", headers={"authorization": f"Bearer {API_KEY}"}, timeout=10
    )
    assert answer.status_code == 200
    return {entry["id"]: entry for entry in answer.json()["data"]}


def test_discovered_models_are_offered_and_callable(
    emulated: tuple[BedrockEmulator, ServerThread], gateway: ServerThread
) -> None:
    emulator, _ = emulated
    models = _models(gateway)
    # Configured entries stay as configured, and say so.
    assert models["nova-micro"]["owned_by"] == "config"
    assert "capabilities" not in models["nova-micro"]
    # The profile-only model is offered under its profile id and a clean alias.
    alias = models["claude-sonnet-4-5"]
    assert alias["owned_by"] == "discovered"
    assert alias["bedrock_model_id"] == SONNET_PROFILE
    assert alias["capabilities"]["images"] is True
    assert models[SONNET_PROFILE]["owned_by"] == "discovered"
    # Image generators are listed by Bedrock but not offered: no route serves them.
    assert not any("stability" in name for name in models)
    # The base id of a profile-only model is not offered: Bedrock would refuse it.
    assert "anthropic.claude-sonnet-4-5-20250929-v1:0" not in models
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=API_KEY, max_retries=0) as client:
        reply = client.chat.completions.create(
            model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}]
        )
    assert reply.choices[0].message.content
    called = [c.model_id for c in emulator.control.calls if c.operation == "converse"]
    assert called == [SONNET_PROFILE]


def test_a_new_model_is_picked_up_without_a_restart(
    emulated: tuple[BedrockEmulator, ServerThread], gateway: ServerThread
) -> None:
    emulator, _ = emulated
    assert "nova-premier" not in _models(gateway)
    emulator.control.add_foundation_model(
        "amazon.nova-premier-v1:0", provider="Amazon", inference=("ON_DEMAND",)
    )
    deadline = time.monotonic() + 10
    models = _models(gateway)
    while "nova-premier" not in models and time.monotonic() < deadline:
        time.sleep(0.1)
        models = _models(gateway)
    assert models["nova-premier"]["bedrock_model_id"] == "amazon.nova-premier-v1:0"
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=API_KEY, max_retries=0) as client:
        reply = client.chat.completions.create(
            model="nova-premier", messages=[{"role": "user", "content": "hi"}]
        )
    assert reply.choices[0].message.content


def test_an_unpriced_discovered_model_is_refused_to_a_budgeted_key(
    emulated: tuple[BedrockEmulator, ServerThread], gateway: ServerThread
) -> None:
    emulator, _ = emulated
    emulator.control.add_foundation_model("acme.unpriced-chat-v1:0", inference=("ON_DEMAND",))
    deadline = time.monotonic() + 10
    while "unpriced-chat" not in _models(gateway) and time.monotonic() < deadline:
        time.sleep(0.1)
    budgeted = openai.OpenAI(base_url=gateway.url + "/v1", api_key=BUDGET_KEY, max_retries=0)
    with budgeted, pytest.raises(openai.PermissionDeniedError) as refused:
        budgeted.chat.completions.create(
            model="unpriced-chat", messages=[{"role": "user", "content": "hi"}]
        )
    assert "price" in str(refused.value)
    # A key without a budget may still call it.
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=API_KEY, max_retries=0) as client:
        client.chat.completions.create(
            model="unpriced-chat", messages=[{"role": "user", "content": "hi"}]
        )
