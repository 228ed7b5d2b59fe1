"""The guardrail on the wire (`gateway.translate.shared.guardrails`), table by table, and
the translators that send it or take a caller's guardrail fields out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.schemas.openai import ChatCompletionRequest
from gateway.schemas.openai_responses import ResponsesRequest
from gateway.translate.anthropic_messages.converse import converse_response, messages_to_converse
from gateway.translate.openai_chat.request import openai_to_converse_request
from gateway.translate.openai_responses.request import converse_call, prepare
from gateway.translate.shared.guardrails import (
    CALLER_GUARDRAIL_FIELDS,
    Guardrail,
    converse_guardrail_config,
    invoke_guardrail_body,
    invoke_guardrail_params,
    take_caller_guardrail_fields,
)

GUARD = Guardrail(
    id="abc123", version="DRAFT", trace="enabled_full", stream_processing_mode="async"
)


@pytest.mark.parametrize(
    ("trace", "converse", "invoke"),
    [
        ("off", "disabled", "DISABLED"),
        ("enabled", "enabled", "ENABLED"),
        ("enabled_full", "enabled_full", "ENABLED_FULL"),
    ],
)
def test_trace_spellings(trace: str, converse: str, invoke: str) -> None:
    guardrail = Guardrail(id="g", version="1", trace=trace)
    assert converse_guardrail_config(guardrail, stream=False)["trace"] == converse
    assert invoke_guardrail_params(guardrail)["trace"] == invoke


def test_converse_config_has_the_mode_only_when_streaming() -> None:
    assert converse_guardrail_config(GUARD, stream=False) == {
        "guardrailIdentifier": "abc123",
        "guardrailVersion": "DRAFT",
        "trace": "enabled_full",
    }
    assert converse_guardrail_config(GUARD, stream=True)["streamProcessingMode"] == "async"


def test_invoke_params_are_botocores_names() -> None:
    assert invoke_guardrail_params(GUARD) == {
        "guardrailIdentifier": "abc123",
        "guardrailVersion": "DRAFT",
        "trace": "ENABLED_FULL",
    }


@pytest.mark.parametrize(
    ("guardrail", "stream", "changed"),
    [
        (GUARD, True, True),
        (GUARD, False, False),  # InvokeModel has no stream mode
        (Guardrail(id="g", version="1"), True, False),  # sync is Bedrock's default
        (None, True, False),
    ],
)
def test_invoke_body_carries_only_the_async_mode(
    guardrail: Guardrail | None, stream: bool, changed: bool
) -> None:
    body = b'{"anthropic_version":"bedrock-2023-05-31","max_tokens":5}'
    sent = invoke_guardrail_body(body, guardrail, stream=stream)
    if not changed:
        assert sent is body
        return
    assert json.loads(sent) == {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 5,
        "amazon-bedrock-guardrailConfig": {"streamProcessingMode": "ASYNCHRONOUS"},
    }
    assert json.loads(invoke_guardrail_body(b"{}", guardrail, stream=True)) == {
        "amazon-bedrock-guardrailConfig": {"streamProcessingMode": "ASYNCHRONOUS"}
    }


def test_take_caller_fields_removes_every_one_in_order() -> None:
    fields: dict[str, Any] = {"top_k": 3, **dict.fromkeys(CALLER_GUARDRAIL_FIELDS, "x")}
    assert take_caller_guardrail_fields(fields) == list(CALLER_GUARDRAIL_FIELDS)
    assert fields == {"top_k": 3}


def _chat(**extra: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}
    )


def test_chat_sends_the_operators_guardrail_and_drops_the_callers() -> None:
    call = openai_to_converse_request(
        _chat(
            guardrailConfig={"guardrailIdentifier": "mine", "guardrailVersion": "1"},
            top_k=3,
            additional_model_request_fields={"guardrailIdentifier": "mine", "x": 1},
        ),
        model_id="us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        guardrail=converse_guardrail_config(GUARD, stream=False),
    )
    assert call.request["guardrailConfig"]["guardrailIdentifier"] == "abc123"
    assert call.request["additionalModelRequestFields"] == {"top_k": 3, "x": 1}
    # Dropped without drop_unsupported_params: a caller's guardrail is never an error.
    assert call.dropped == (
        "guardrailConfig",
        "additional_model_request_fields.guardrailIdentifier",
    )


def test_chat_without_a_guardrail_sends_none() -> None:
    call = openai_to_converse_request(_chat(), model_id="amazon.nova-micro-v1:0")
    assert "guardrailConfig" not in call.request and call.dropped == ()


def test_responses_pass_the_guardrail_and_list_the_callers_own() -> None:
    req = ResponsesRequest.model_validate(
        {"model": "m", "input": "hi", "guardrailConfig": {"guardrailIdentifier": "x"}}
    )
    prepared = prepare(req, reasoning_key=b"k" * 32, reasoning_supported=False)
    call = converse_call(
        prepared,
        model_id="amazon.nova-micro-v1:0",
        guardrail=converse_guardrail_config(GUARD, stream=True),
    )
    assert call.converse.request["guardrailConfig"]["streamProcessingMode"] == "async"
    assert call.dropped == ("guardrailConfig",)


def test_messages_converse_drops_the_callers_guardrail_fields() -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}],
        "guardrailConfig": {},
        "amazon-bedrock-guardrailConfig": {},
    }
    call = messages_to_converse(body, drop_unsupported=False)
    assert call.dropped_params == ["guardrailConfig", "amazon-bedrock-guardrailConfig"]
    assert "guardrailConfig" not in call.request


@pytest.mark.parametrize(
    ("stop", "intervened", "stop_reason"),
    [
        ("guardrail_intervened", True, "refusal"),
        ("content_filtered", False, "refusal"),  # the model's own filter, no guardrail
        ("end_turn", False, "end_turn"),
    ],
)
def test_messages_converse_answer_says_whether_a_guardrail_intervened(
    stop: str, intervened: bool, stop_reason: str
) -> None:
    answer = {"output": {"message": {"content": [{"text": "x"}]}}, "stopReason": stop}
    message, usage = converse_response(answer, message_id="msg_1", model="m")
    assert message["stop_reason"] == stop_reason
    assert usage.guardrail_intervened is intervened
