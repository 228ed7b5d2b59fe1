"""The Converse fields of 2026 (service tiers, adaptive thinking, native structured output,
1-hour cache points, the gateway's requestMetadata): what is refused, by which name.

The mappings themselves are golden files (`tests/golden/request/service_tier_*`,
`reasoning_adaptive_*`, `structured_native_*`, `strict_tools_*`, `cache_ttl_1h`,
`cache_retention_24h`, `request_metadata_gateway*`), checked against botocore's model there.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import InvalidRequestError, UnsupportedParameterError, UpstreamError
from gateway.schemas.openai import ChatCompletionRequest
from gateway.translate.openai_chat.request import (
    ConverseCall,
    ModelOptions,
    openai_to_converse_request,
)
from gateway.translate.openai_chat.response import converse_to_openai_response
from gateway.translate.shared.request_metadata import gateway_request_metadata

USER = [{"role": "user", "content": "Hi"}]
ADAPTIVE = ModelOptions(reasoning_supported=True, reasoning_mode="adaptive")
TIERED = ModelOptions(service_tiers=("default", "flex"))


def _translate(body: dict[str, Any], **kwargs: Any) -> ConverseCall:
    req = ChatCompletionRequest.model_validate({"model": "m", "messages": USER, **body})
    return openai_to_converse_request(req, model_id="global.anthropic.claude-opus-4-7", **kwargs)


@pytest.mark.parametrize("tier", ["auto", "default", "flex"])
def test_offered_tiers_pass(tier: str) -> None:
    call = _translate({"service_tier": tier}, options=TIERED)
    assert call.request.get("serviceTier") == ({"type": "flex"} if tier == "flex" else None)


def test_a_tier_the_model_does_not_offer_is_refused_by_name() -> None:
    with pytest.raises(UnsupportedParameterError) as info:
        _translate({"service_tier": "priority"}, options=TIERED)
    assert info.value.param == "service_tier"
    assert "auto, default, flex" in info.value.message


def test_a_model_without_tiers_offers_only_the_default() -> None:
    with pytest.raises(UnsupportedParameterError) as info:
        _translate({"service_tier": "flex"})
    assert info.value.param == "service_tier"


@pytest.mark.parametrize("tier", ["scale", "Flex", "reserved", ""])
def test_an_unknown_tier_is_a_400_naming_service_tier(tier: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        _translate({"service_tier": tier}, options=TIERED, drop_unsupported=True)
    assert info.value.param == "service_tier"


def test_adaptive_models_never_get_a_budget() -> None:
    for effort in ("minimal", "low", "medium", "high", "xhigh", "max"):
        request = _translate({"reasoning_effort": effort}, options=ADAPTIVE).request
        assert request["additionalModelRequestFields"] == {"thinking": {"type": "adaptive"}}
        assert request["outputConfig"]["effort"] in ("low", "medium", "high", "xhigh", "max")
        assert "maxTokens" not in request.get("inferenceConfig", {})


def test_a_thinking_budget_on_an_adaptive_model_is_refused() -> None:
    with pytest.raises(UnsupportedParameterError) as info:
        _translate({"thinking": {"type": "enabled", "budget_tokens": 2048}}, options=ADAPTIVE)
    assert info.value.param == "thinking.type"
    assert "reasoning_effort" in info.value.message


@pytest.mark.parametrize(
    ("thinking", "param"),
    [
        ("on", "thinking"),
        ({"type": "maybe"}, "thinking.type"),
        ({"type": "adaptive", "x": 1}, "thinking.x"),
    ],
)
def test_malformed_thinking_on_an_adaptive_model(thinking: Any, param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        _translate({"thinking": thinking}, options=ADAPTIVE)
    assert info.value.param == param


def test_disabled_thinking_on_an_adaptive_model_sends_none() -> None:
    request = _translate({"thinking": {"type": "disabled"}}, options=ADAPTIVE).request
    assert "additionalModelRequestFields" not in request and "outputConfig" not in request


def test_effort_and_thinking_together_are_refused() -> None:
    with pytest.raises(InvalidRequestError) as info:
        _translate({"reasoning_effort": "low", "thinking": {"type": "adaptive"}}, options=ADAPTIVE)
    assert info.value.param == "thinking"


def test_adaptive_thinking_keeps_anthropics_sampling_rules() -> None:
    with pytest.raises(UnsupportedParameterError) as info:
        _translate({"reasoning_effort": "high", "temperature": 0.3}, options=ADAPTIVE)
    assert info.value.param == "temperature"


def test_budget_models_are_unchanged() -> None:
    request = _translate(
        {"reasoning_effort": "high"}, options=ModelOptions(reasoning_supported=True)
    ).request
    assert request["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 16384
    assert "outputConfig" not in request


def test_a_native_schema_that_is_not_an_object_is_refused() -> None:
    body = {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "n", "schema": {"type": "array"}},
        }
    }
    with pytest.raises(InvalidRequestError) as info:
        _translate(body, options=ModelOptions(structured_output="native"))
    assert info.value.param == "response_format.json_schema.schema"


def test_the_gateways_metadata_cannot_be_overwritten_by_the_client() -> None:
    mine = gateway_request_metadata("app1", "search", None)
    call = _translate(
        {"user": "u", "metadata": {"key_id": "evil", "team": "evil"}}, request_metadata=mine
    )
    assert call.request["requestMetadata"] == {"key_id": "app1", "team": "search", "end_user": "u"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("app1", "search", "alice"), {"key_id": "app1", "team": "search", "user": "alice"}),
        (("app1", None, None), {"key_id": "app1"}),
        ((None, None, None), {}),
        (("k" * 300, "t<>", "ü"), {"key_id": "k" * 256, "team": "t__", "user": "_"}),
    ],
)
def test_gateway_request_metadata_is_cleaned(
    args: tuple[str | None, str | None, str | None], expected: dict[str, str]
) -> None:
    assert gateway_request_metadata(*args) == expected


def _response(**extra: Any) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
        **extra,
    }


def test_the_response_says_the_tier_bedrock_served_on() -> None:
    served = converse_to_openai_response(
        _response(serviceTier={"type": "flex"}), completion_id="c", model="m", created=1
    )
    assert served["service_tier"] == "flex"
    unsaid = converse_to_openai_response(_response(), completion_id="c", model="m", created=1)
    assert "service_tier" not in unsaid


@pytest.mark.parametrize("reason", ["malformed_tool_use", "malformed_model_output"])
def test_a_malformed_answer_is_an_upstream_error(reason: str) -> None:
    with pytest.raises(UpstreamError) as info:
        converse_to_openai_response(
            _response(stopReason=reason), completion_id="c", model="m", created=1
        )
    assert info.value.status == 502 and info.value.code == reason


@pytest.mark.parametrize(
    ("reason", "finish"),
    [("model_context_window_exceeded", "length"), ("guardrail_intervened", "content_filter")],
)
def test_newer_stop_reasons_finish_as_openai_says(reason: str, finish: str) -> None:
    answer = converse_to_openai_response(
        _response(stopReason=reason), completion_id="c", model="m", created=1
    )
    assert answer["choices"][0]["finish_reason"] == finish
