"""Bedrock Guardrails through the whole path: the real OpenAI and Anthropic SDKs -> the
gateway over HTTP -> aiobotocore -> the emulator, which checks the guardrail it receives
as Bedrock does and intervenes on `@emulator {"guardrail": "intervene"}`.

The emulator's `echo: guardrailConfig` replies with the guardrail the gateway sent (for
Claude on InvokeModel: its guardrail headers, in Converse's shape), so each test sees
what reached Bedrock, not what the gateway meant to send.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
import yaml
from prometheus_client import CollectorRegistry

from gateway.app import create_app
from gateway.config import load_config
from gateway.emulator.guardrails import BLOCKED_MESSAGE
from tests.fullpath.conftest import (
    ADMIN_KEY,
    API_KEY,
    OTHER_KEY,
    GatewayFactory,
    RunningGateway,
    base_config,
    ledger,
    script,
    sha,
)
from tests.harness import Credentials
from tests.servers import ServerThread

NOVA = "nova-micro"  # Converse on every surface
CLAUDE = "claude-3-5-sonnet"  # Converse on chat and Responses, InvokeModel on /v1/messages
SOLO_KEY = "sk-test-solo-no-team"

GUARDRAILS = {
    "default": {"id": "default0guard", "version": 1},
    "models": {NOVA: {"id": "nova0guard", "version": "2", "trace": "enabled"}},
}
TEAMS = {
    "search": {"guardrail": {"id": "search0guard", "version": "DRAFT"}},
    "ads": {"guardrail": {"id": "ads0guard", "version": 3, "stream_processing_mode": "async"}},
}


def _auth(emulator: ServerThread, tmp_path: Any) -> dict[str, Any]:
    auth: dict[str, Any] = base_config(emulator.url, tmp_path)["auth"]
    keys = [dict(key) for key in auth["keys"]]
    keys[0]["guardrail"] = {"id": "key0guard", "version": "7", "trace": "enabled_full"}
    keys.append({"id": "solo", "key_sha256": sha(SOLO_KEY)})  # no team, no guardrail
    return {**auth, "keys": keys, "teams": TEAMS}


@pytest.fixture
def gateway(start_gateway: GatewayFactory, emulator: ServerThread, tmp_path: Any) -> RunningGateway:
    return start_gateway(guardrails=GUARDRAILS, auth=_auth(emulator, tmp_path))


def _chat(gateway: RunningGateway, text: str, *, key: str = API_KEY, **kwargs: Any) -> Any:
    with gateway.client(key) as client:
        return client.chat.completions.with_raw_response.create(
            model=kwargs.pop("model", NOVA),
            messages=[{"role": "user", "content": text}],
            **kwargs,
        )


def _sent(gateway: RunningGateway, *, key: str, model: str) -> Any:
    raw = _chat(gateway, script("Q", echo="guardrailConfig"), key=key, model=model)
    return json.loads(raw.parse().choices[0].message.content or "null")


# -- which guardrail: key > team > model > default ----------------------------------------


@pytest.mark.parametrize(
    ("key", "model", "expected"),
    [
        # app1 has its own guardrail, its team (search) and the model too: the key's wins.
        (API_KEY, NOVA, {"guardrailIdentifier": "key0guard", "guardrailVersion": "7"}),
        # app2 has none of its own: its team's (ads) wins over the model's.
        (OTHER_KEY, NOVA, {"guardrailIdentifier": "ads0guard", "guardrailVersion": "3"}),
        # No team: the model's wins over the default.
        (SOLO_KEY, NOVA, {"guardrailIdentifier": "nova0guard", "guardrailVersion": "2"}),
        # Nothing more specific: the default (a YAML number turned into "1").
        (SOLO_KEY, CLAUDE, {"guardrailIdentifier": "default0guard", "guardrailVersion": "1"}),
        (ADMIN_KEY, CLAUDE, {"guardrailIdentifier": "default0guard", "guardrailVersion": "1"}),
    ],
)
def test_the_most_specific_guardrail_is_sent(
    gateway: RunningGateway, key: str, model: str, expected: dict[str, str]
) -> None:
    sent = _sent(gateway, key=key, model=model)
    assert {k: sent[k] for k in expected} == expected
    assert "streamProcessingMode" not in sent  # Converse has none; ConverseStream does
    (record,) = ledger(gateway)
    assert record["guardrail_id"] == expected["guardrailIdentifier"]


def test_trace_is_sent_in_converse_spelling(gateway: RunningGateway) -> None:
    assert _sent(gateway, key=API_KEY, model=NOVA)["trace"] == "enabled_full"
    assert _sent(gateway, key=SOLO_KEY, model=NOVA)["trace"] == "enabled"
    assert _sent(gateway, key=SOLO_KEY, model=CLAUDE)["trace"] == "disabled"


def test_a_stream_carries_the_processing_mode(gateway: RunningGateway) -> None:
    for key, mode in ((OTHER_KEY, "async"), (SOLO_KEY, "sync")):
        with gateway.client(key) as client:
            stream = client.chat.completions.create(
                model=NOVA,
                messages=[{"role": "user", "content": script("Q", echo="guardrailConfig")}],
                stream=True,
            )
            text = "".join(
                chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices
            )
        assert json.loads(text)["streamProcessingMode"] == mode


# -- interventions on each surface -------------------------------------------------------


def _intervened_record(gateway: RunningGateway, guardrail: str) -> dict[str, Any]:
    (record,) = ledger(gateway)
    assert record["status"] == 200 and record["guardrail_id"] == guardrail
    return record


def test_chat_whole_answer_intervention(gateway: RunningGateway) -> None:
    raw = _chat(gateway, script("Tell me", guardrail="intervene"))
    answer = raw.parse()
    assert answer.choices[0].finish_reason == "content_filter"
    assert answer.choices[0].message.content == BLOCKED_MESSAGE
    with gateway.http() as http:
        metrics = http.get("/metrics").text
    assert (
        'gateway_guardrail_interventions_total{guardrail="key0guard",model="nova-micro",'
        'team="search"} 1.0'
        in metrics
        or 'gateway_guardrail_interventions_total{model="nova-micro",team="search",'
        'guardrail="key0guard"} 1.0'
        in metrics
    )
    _intervened_record(gateway, "key0guard")


def test_chat_stream_intervention(gateway: RunningGateway) -> None:
    with gateway.client(OTHER_KEY) as client:
        stream = client.chat.completions.create(
            model=NOVA,
            messages=[{"role": "user", "content": script("Tell me", guardrail="intervene")}],
            stream=True,
        )
        chunks = [chunk for chunk in stream if chunk.choices]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason]
    assert finishes == ["content_filter"]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == BLOCKED_MESSAGE
    with gateway.http() as http:
        metrics = http.get("/metrics").text
    assert _counted(metrics, model=NOVA, team="ads", guardrail="ads0guard") == 1
    _intervened_record(gateway, "ads0guard")


def test_no_intervention_counts_nothing(gateway: RunningGateway) -> None:
    answer = _chat(gateway, "Hello").parse()
    assert answer.choices[0].finish_reason == "stop"
    with gateway.http() as http:
        metrics = http.get("/metrics").text
    assert _counted(metrics, model=NOVA, team="search", guardrail="key0guard") == 0
    (record,) = ledger(gateway)
    assert record["guardrail_id"] == "key0guard"  # sent, even if it did not intervene


def test_responses_whole_answer_intervention(gateway: RunningGateway) -> None:
    with gateway.client() as client:
        response = client.responses.create(
            model=CLAUDE, input=script("Tell me", guardrail="intervene"), store=False
        )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "content_filter"
    assert response.output_text == BLOCKED_MESSAGE
    _intervened_record(gateway, "key0guard")


def test_responses_stream_intervention(gateway: RunningGateway) -> None:
    with gateway.client(SOLO_KEY) as client:
        stream = client.responses.create(
            model=CLAUDE, input=script("Tell me", guardrail="intervene"), store=False, stream=True
        )
        events = list(stream)
    final = events[-1]
    assert final.type == "response.incomplete"
    assert final.response.status == "incomplete"
    assert final.response.incomplete_details is not None
    assert final.response.incomplete_details.reason == "content_filter"
    with gateway.http() as http:
        metrics = http.get("/metrics").text
    assert _counted(metrics, model=CLAUDE, team="", guardrail="default0guard") == 1
    _intervened_record(gateway, "default0guard")


def _anthropic(gateway: RunningGateway, key: str = API_KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)


def test_messages_claude_invoke_intervention(gateway: RunningGateway) -> None:
    with _anthropic(gateway) as client:
        message = client.messages.create(
            model=CLAUDE,
            max_tokens=100,
            messages=[{"role": "user", "content": script("Tell me", guardrail="intervene")}],
        )
    assert message.stop_reason == "refusal"
    assert message.content[0].text == BLOCKED_MESSAGE  # type: ignore[union-attr]
    assert "amazon-bedrock-guardrailAction" not in message.model_dump_json()
    _intervened_record(gateway, "key0guard")


def test_messages_claude_invoke_stream_intervention(gateway: RunningGateway) -> None:
    # Bedrock keeps Claude's end_turn and says "INTERVENED" on the last chunk only.
    with (
        _anthropic(gateway, OTHER_KEY) as client,
        client.messages.stream(
            model=CLAUDE,
            max_tokens=100,
            messages=[{"role": "user", "content": script("Tell me", guardrail="intervene")}],
        ) as stream,
    ):
        final = stream.get_final_message()
    assert final.stop_reason == "refusal"
    with gateway.http() as http:
        metrics = http.get("/metrics").text
    assert _counted(metrics, model=CLAUDE, team="ads", guardrail="ads0guard") == 1
    _intervened_record(gateway, "ads0guard")


def test_messages_claude_invoke_sends_the_guardrail_headers(gateway: RunningGateway) -> None:
    with _anthropic(gateway) as client:
        message = client.messages.create(
            model=CLAUDE,
            max_tokens=100,
            messages=[{"role": "user", "content": script("Q", echo="guardrailConfig")}],
        )
    sent = json.loads(message.content[0].text)  # type: ignore[union-attr]
    assert sent == {
        "guardrailIdentifier": "key0guard",
        "guardrailVersion": "7",
        "trace": "enabled_full",
    }


def test_messages_claude_stream_async_mode_reaches_bedrock(gateway: RunningGateway) -> None:
    # ads0guard streams asynchronously: the mode travels in the InvokeModel body.
    with (
        _anthropic(gateway, OTHER_KEY) as client,
        client.messages.stream(
            model=CLAUDE,
            max_tokens=100,
            messages=[{"role": "user", "content": script("Q", echo="guardrailConfig")}],
        ) as stream,
    ):
        text = "".join(stream.text_stream)
    assert json.loads(text)["streamProcessingMode"] == "async"


def test_messages_converse_intervention(gateway: RunningGateway) -> None:
    with _anthropic(gateway, SOLO_KEY) as client:
        message = client.messages.create(
            model=NOVA,
            max_tokens=100,
            messages=[{"role": "user", "content": script("Tell me", guardrail="intervene")}],
        )
    assert message.stop_reason == "refusal"
    _intervened_record(gateway, "nova0guard")


def test_messages_converse_stream_intervention(gateway: RunningGateway) -> None:
    with (
        _anthropic(gateway, SOLO_KEY) as client,
        client.messages.stream(
            model=NOVA,
            max_tokens=100,
            messages=[{"role": "user", "content": script("Tell me", guardrail="intervene")}],
        ) as stream,
    ):
        final = stream.get_final_message()
    assert final.stop_reason == "refusal"
    with gateway.http() as http:
        metrics = http.get("/metrics").text
    assert _counted(metrics, model=NOVA, team="", guardrail="nova0guard") == 1
    _intervened_record(gateway, "nova0guard")


# -- a caller cannot add, remove or weaken a guardrail -----------------------------------


def test_a_callers_guardrail_config_is_ignored_and_listed(gateway: RunningGateway) -> None:
    raw = _chat(
        gateway,
        script("Q", echo="guardrailConfig"),
        extra_body={
            "guardrailConfig": {"guardrailIdentifier": "weaker", "guardrailVersion": "1"},
            "additional_model_request_fields": {
                "amazon-bedrock-guardrailConfig": {"streamProcessingMode": "ASYNCHRONOUS"}
            },
        },
    )
    sent = json.loads(raw.parse().choices[0].message.content or "null")
    assert sent["guardrailIdentifier"] == "key0guard"
    assert raw.headers["x-gateway-dropped-params"] == (
        "guardrailConfig,additional_model_request_fields.amazon-bedrock-guardrailConfig"
    )


def test_a_caller_cannot_add_a_guardrail(
    start_gateway: GatewayFactory, emulator: ServerThread
) -> None:
    # No guardrail configured: the caller's own is not sent, so nothing can intervene.
    gateway = start_gateway()
    assert gateway.app.state.gateway.runtime.guardrails is None
    raw = _chat(
        gateway,
        script("Tell me", guardrail="intervene"),
        extra_body={"guardrailConfig": {"guardrailIdentifier": "mine", "guardrailVersion": "1"}},
    )
    assert raw.parse().choices[0].finish_reason == "stop"
    assert raw.headers["x-gateway-dropped-params"] == "guardrailConfig"
    (record,) = ledger(gateway)
    assert record["guardrail_id"] is None


def test_responses_caller_guardrail_is_listed(gateway: RunningGateway) -> None:
    with gateway.client() as client:
        raw = client.responses.with_raw_response.create(
            model=NOVA,
            input=script("Q", echo="guardrailConfig"),
            store=False,
            extra_body={"guardrailConfig": {"guardrailIdentifier": "x", "guardrailVersion": "1"}},
        )
    assert raw.headers["x-gateway-dropped-params"] == "guardrailConfig"
    assert json.loads(raw.parse().output_text)["guardrailIdentifier"] == "key0guard"


@pytest.mark.parametrize("model", [CLAUDE, NOVA])
def test_messages_caller_guardrail_fields_are_listed(gateway: RunningGateway, model: str) -> None:
    with _anthropic(gateway) as client:
        raw = client.messages.with_raw_response.create(
            model=model,
            max_tokens=100,
            messages=[{"role": "user", "content": script("Q", echo="guardrailConfig")}],
            extra_body={
                "amazon-bedrock-guardrailConfig": {"streamProcessingMode": "ASYNCHRONOUS"},
                "guardrailIdentifier": "none0",
                "trace": "DISABLED",
            },
        )
    assert raw.headers["x-gateway-dropped-params"] == (
        "amazon-bedrock-guardrailConfig,guardrailIdentifier,trace"
    )
    sent = json.loads(raw.parse().content[0].text)  # type: ignore[union-attr]
    assert sent["guardrailIdentifier"] == "key0guard" and sent["trace"] == "enabled_full"


def test_embeddings_get_no_guardrail(gateway: RunningGateway) -> None:
    with gateway.client() as client:
        client.embeddings.create(model="titan-embed-text-v2", input="hello")
    (record,) = ledger(gateway)
    assert record["guardrail_id"] is None


def test_a_reload_changes_the_guardrail_without_a_restart(
    emulator: ServerThread, tmp_path: Any
) -> None:
    # SIGHUP's work (Gateway.reload), in process: the next request gets the new guardrail.
    path = tmp_path / "config.yaml"
    document = base_config(emulator.url, tmp_path)
    path.write_text(yaml.safe_dump(document))
    app = create_app(
        load_config(path, {}),
        registry=CollectorRegistry(),
        credentials=Credentials(),
        config_path=path,
    )
    gateway = RunningGateway(server=ServerThread(app), app=app, config=load_config(path, {}))
    try:
        assert _sent(gateway, key=API_KEY, model=NOVA) is None  # nothing configured
        document["guardrails"] = {"default": {"id": "late0guard", "version": 4}}
        path.write_text(yaml.safe_dump(document))
        assert app.state.gateway.reload({})
        assert _sent(gateway, key=API_KEY, model=NOVA)["guardrailIdentifier"] == "late0guard"
    finally:
        gateway.server.stop()


def _counted(metrics: str, *, model: str, team: str, guardrail: str) -> float:
    """The value of one series of gateway_guardrail_interventions_total (0 if absent)."""
    prefix = "gateway_guardrail_interventions_total{"
    for line in metrics.splitlines():
        if not line.startswith(prefix):
            continue
        labels, _, value = line[len(prefix) :].partition("} ")
        pairs = dict(part.split("=", 1) for part in labels.split(","))
        if pairs == {"model": f'"{model}"', "team": f'"{team}"', "guardrail": f'"{guardrail}"'}:
            return float(value)
    return 0.0
