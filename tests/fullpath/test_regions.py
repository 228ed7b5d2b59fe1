"""Several regions per model and team roles, end to end: the `openai` SDK -> our app ->
aiobotocore -> the emulator, which reads the region and access key id of each call from
its SigV4 signature (gateway/emulator/control.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from prometheus_client import CollectorRegistry

from gateway.app import create_app
from gateway.config import GatewayConfig
from gateway.emulator.app import BedrockEmulator, create_emulator_app
from tests.harness import (
    API_KEY,
    OTHER_KEY,
    Credentials,
    RunningGateway,
    base_config,
    ledger,
    script,
)
from tests.servers import ServerThread, serve

MODEL = {
    "name": "sonnet",
    "bedrock_id": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "regions": ["us-east-1", "us-west-2"],
    "pricing": {"input_per_1k": "0.003", "output_per_1k": "0.015"},
}


@pytest.fixture
def emulated() -> Iterator[tuple[BedrockEmulator, ServerThread]]:
    app = create_emulator_app()
    with serve(app) as server:
        yield app, server


class _Gateway(RunningGateway):
    """Closes every SDK client it handed out when the test ends (no leaked sockets)."""

    def client(self, key: str = API_KEY, **kwargs: Any) -> openai.OpenAI:
        client = super().client(key, **kwargs)
        opened.append(client)
        return client


opened: list[openai.OpenAI] = []


@pytest.fixture
def start(emulated: tuple[BedrockEmulator, ServerThread], tmp_path: Path) -> Iterator[Any]:
    running: list[ServerThread] = []

    def start_gateway(**overrides: Any) -> RunningGateway:
        data = base_config(emulated[1].url, tmp_path, **overrides)
        config = GatewayConfig.model_validate(data)
        app = create_app(config, registry=CollectorRegistry(), credentials=Credentials())
        server = ServerThread(app)
        running.append(server)
        return _Gateway(server=server, app=app, config=config)

    yield start_gateway
    while opened:
        opened.pop().close()
    for server in running:
        server.stop()


def _calls(emulator: BedrockEmulator, operation: str = "converse") -> list[Any]:
    return [c for c in emulator.control.calls if c.operation == operation]


def _metric(gateway: RunningGateway, name: str) -> list[str]:
    text = httpx.get(gateway.url + "/metrics", timeout=10).text
    return [line for line in text.splitlines() if line.startswith(name)]


def test_a_throttled_region_fails_over_to_the_next(emulated: Any, start: Any) -> None:
    emulator, _ = emulated
    gateway = start(models=[MODEL])
    reply = gateway.client().chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": script("hi", fail_regions=["us-east-1"])}],
    )
    assert reply.choices[0].message.content
    regions = [c.region for c in _calls(emulator)]
    assert regions == ["us-east-1", "us-west-2"]
    failovers = _metric(gateway, "gateway_region_failovers_total{")
    assert failovers == [
        'gateway_region_failovers_total{from_region="us-east-1",model="sonnet",'
        'to_region="us-west-2"} 1.0'
    ]


def test_a_stream_fails_over_before_its_first_byte(emulated: Any, start: Any) -> None:
    emulator, _ = emulated
    gateway = start(models=[MODEL])
    stream = gateway.client().chat.completions.create(
        model="sonnet",
        stream=True,
        messages=[
            {
                "role": "user",
                "content": script(
                    "hi", fail_regions=["us-east-1"], error="ServiceUnavailableException"
                ),
            }
        ],
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text
    assert [c.region for c in _calls(emulator, "converse-stream")] == ["us-east-1", "us-west-2"]


def test_three_throttles_in_a_row_cool_the_region_down(emulated: Any, start: Any) -> None:
    emulator, _ = emulated
    gateway = start(
        models=[MODEL],
        bedrock={
            "region": "us-east-1",
            "endpoint_url": emulated[1].url,
            "retries": {"mode": "standard", "max_attempts": 1},
            "region_cooldown_s": 300,
        },
    )
    client = gateway.client()
    message = [{"role": "user", "content": script("hi", fail_regions=["us-east-1"])}]
    for _ in range(5):
        client.chat.completions.create(model="sonnet", messages=message)
    regions = [c.region for c in _calls(emulator)]
    # Three throttles open the breaker: the last two requests go straight to us-west-2.
    assert regions == ["us-east-1", "us-west-2"] * 3 + ["us-west-2"] * 2
    # One region out is no reason to take the gateway out of the load balancer.
    assert httpx.get(gateway.url + "/readyz", timeout=10).status_code == 200


def test_every_region_failing_is_one_error_then_fallbacks(emulated: Any, start: Any) -> None:
    emulator, _ = emulated
    fallback = {"name": "micro", "bedrock_id": "amazon.nova-micro-v1:0", "regions": ["eu-west-1"]}
    gateway = start(models=[{**MODEL, "fallbacks": ["micro"]}, fallback])
    reply = gateway.client().chat.completions.create(
        model="sonnet",
        messages=[
            {"role": "user", "content": script("hi", fail_regions=["us-east-1", "us-west-2"])}
        ],
    )
    assert reply.choices[0].message.content
    calls = [(c.model_id, c.region) for c in _calls(emulator)]
    assert calls == [
        (MODEL["bedrock_id"], "us-east-1"),
        (MODEL["bedrock_id"], "us-west-2"),
        ("amazon.nova-micro-v1:0", "eu-west-1"),
    ]
    with pytest.raises(openai.RateLimitError):
        gateway.client().chat.completions.create(
            model="sonnet",
            messages=[
                {
                    "role": "user",
                    "content": script("hi", fail_regions=["us-east-1", "us-west-2", "eu-west-1"]),
                }
            ],
        )


def test_endpoint_urls_override_one_region(emulated: Any, start: Any, tmp_path: Path) -> None:
    emulator, server = emulated
    other = create_emulator_app()
    with serve(other) as other_server:
        gateway = start(
            models=[MODEL],
            bedrock={
                "region": "us-east-1",
                "endpoint_url": server.url,
                "endpoint_urls": {"us-west-2": other_server.url},
                "retries": {"mode": "standard", "max_attempts": 1},
            },
        )
        gateway.client().chat.completions.create(
            model="sonnet",
            messages=[{"role": "user", "content": script("hi", fail_regions=["us-east-1"])}],
        )
        gateway.server.stop()
    assert [c.region for c in _calls(emulator)] == ["us-east-1"]
    assert [c.region for c in _calls(other)] == ["us-west-2"]


ROLE = "arn:aws:iam::111122223333:role/bedrock-search"


def _teams(role_arn: str = ROLE, **extra: Any) -> dict[str, Any]:
    return {"search": {"role_arn": role_arn, "external_id": "ext-1234", **extra}}


def test_a_team_calls_bedrock_with_its_assumed_role(
    emulated: Any, start: Any, caplog: pytest.LogCaptureFixture
) -> None:
    emulator, server = emulated
    config = base_config(server.url, Path("."))
    auth = {**config["auth"], "teams": _teams()}
    bedrock = {**config["bedrock"], "sts_endpoint_url": server.url}
    gateway = start(auth=auth, bedrock=bedrock)
    search = gateway.client(API_KEY)  # team search
    ads = gateway.client(OTHER_KEY)  # team ads, no role
    for _ in range(2):
        search.chat.completions.create(
            model="claude-3-5-sonnet", messages=[{"role": "user", "content": "hi"}]
        )
    ads.chat.completions.create(
        model="claude-3-5-sonnet", messages=[{"role": "user", "content": "hi"}]
    )
    assumed = emulator.control.assumed
    assert len(assumed) == 1, "one AssumeRole, reused while the credentials are fresh"
    ((key_id, session),) = assumed.items()
    assert session.role_arn == ROLE
    assert session.session_name == "bedrock-gateway-search"
    assert session.tags == {"team": "search"}
    assert session.external_id == "ext-1234"
    assert session.duration_s == 3600
    signers = [c.access_key_id for c in _calls(emulator)]
    assert signers == [key_id, key_id, "test"]
    # Every route of the team goes through its role: embeddings (InvokeModel) too.
    search.embeddings.create(model="titan-embed-text-v2", input="hello")
    assert [c.access_key_id for c in _calls(emulator, "invoke")] == [key_id]
    # The role's credentials are never written anywhere an operator reads.
    metrics = httpx.get(gateway.url + "/metrics", timeout=10).text
    assert key_id not in metrics
    assert key_id not in caplog.text


def test_a_role_refusing_session_tags_is_assumed_untagged(
    emulated: Any, start: Any, caplog: pytest.LogCaptureFixture
) -> None:
    emulator, server = emulated
    config = base_config(server.url, Path("."))
    auth = {**config["auth"], "teams": _teams("arn:aws:iam::111122223333:role/untagged")}
    bedrock = {**config["bedrock"], "sts_endpoint_url": server.url}
    gateway = start(auth=auth, bedrock=bedrock)
    gateway.client().chat.completions.create(
        model="claude-3-5-sonnet", messages=[{"role": "user", "content": "hi"}]
    )
    (session,) = emulator.control.assumed.values()
    assert session.tags == {}
    assert "refused the session tag" in caplog.text


def test_a_role_that_cannot_be_assumed_is_a_clean_error(emulated: Any, start: Any) -> None:
    _, server = emulated
    config = base_config(server.url, Path("."))
    auth = {**config["auth"], "teams": _teams()}
    # STS unreachable: the team's calls fail with an upstream error, nobody else's do.
    bedrock = {**config["bedrock"], "sts_endpoint_url": "http://127.0.0.1:9"}
    gateway = start(auth=auth, bedrock=bedrock)
    with pytest.raises(openai.APIStatusError) as failed:
        gateway.client(API_KEY).chat.completions.create(
            model="claude-3-5-sonnet", messages=[{"role": "user", "content": "hi"}]
        )
    assert failed.value.status_code in (502, 503)
    gateway.client(OTHER_KEY).chat.completions.create(
        model="claude-3-5-sonnet", messages=[{"role": "user", "content": "hi"}]
    )


def test_the_ledger_says_which_region_served(emulated: Any, start: Any) -> None:
    gateway = start(models=[MODEL, {"name": "micro", "bedrock_id": "amazon.nova-micro-v1:0"}])
    with gateway.client() as client:
        _three_calls(client)
    rows = ledger(gateway)
    assert [(r["model"], r["region"], r["status"]) for r in rows] == [
        ("sonnet", "us-west-2", 200),
        ("micro", "us-east-1", 200),  # a model without regions: the default region
        ("sonnet", "us-west-2", 429),  # the last region tried
    ]


def _three_calls(client: openai.OpenAI) -> None:
    client.chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": script("hi", fail_regions=["us-east-1"])}],
    )
    client.chat.completions.create(model="micro", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="sonnet",
            messages=[
                {"role": "user", "content": script("hi", fail_regions=["us-east-1", "us-west-2"])}
            ],
        )


def test_messages_and_responses_fail_over_too(emulated: Any, start: Any) -> None:
    emulator, _ = emulated
    gateway = start(models=[MODEL])
    content = script("hi", fail_regions=["us-east-1"])
    claude = anthropic.Anthropic(base_url=gateway.url, api_key=API_KEY, max_retries=0)
    with (
        claude,
        claude.messages.stream(
            model="sonnet", max_tokens=50, messages=[{"role": "user", "content": content}]
        ) as stream,
    ):
        text = "".join(stream.text_stream)
    assert text
    gateway.client().responses.create(model="sonnet", input=content)
    calls = [(c.operation, c.region) for c in emulator.control.calls]
    assert calls == [
        ("invoke-with-response-stream", "us-east-1"),
        ("invoke-with-response-stream", "us-west-2"),
        ("converse", "us-east-1"),
        ("converse", "us-west-2"),
    ]
