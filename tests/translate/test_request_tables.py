"""One parametrized test per mapping table of the request translator."""

from __future__ import annotations

import re
from typing import Any

import pytest

from gateway.errors import InvalidRequestError, UnsupportedParameterError
from gateway.schemas.openai import ChatCompletionRequest
from gateway.translate.openai_chat.params import (
    EXTRA_BODY_PARAMS,
    IGNORED_PARAMS,
    INFERENCE_PARAMS,
    TOP_K_FIELDS,
    TRANSLATED_PARAMS,
    UNSUPPORTED_PARAMS,
    WHITESPACE_STOP_REFUSED,
    request_metadata,
)
from gateway.translate.openai_chat.request import ConverseCall, openai_to_converse_request
from gateway.translate.shared.tools import TOOL_CHOICE_MODES

ANTHROPIC = "anthropic.claude-3-5-sonnet-20240620-v1:0"
LLAMA = "meta.llama3-1-70b-instruct-v1:0"
BASELINE = {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}
METADATA_PATTERN = re.compile(r"[a-zA-Z0-9\s:_@$#=/+,\-.]{0,256}")


def _translate(fields: dict[str, Any], model_id: str = ANTHROPIC) -> ConverseCall:
    body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], **fields}
    return openai_to_converse_request(ChatCompletionRequest.model_validate(body), model_id=model_id)


def test_every_request_field_is_decided_exactly_once() -> None:
    tables = [
        set(UNSUPPORTED_PARAMS),
        set(IGNORED_PARAMS),
        set(INFERENCE_PARAMS),
        TRANSLATED_PARAMS,
    ]
    assert sorted(name for table in tables for name in table) == sorted(
        ChatCompletionRequest.model_fields
    )


IGNORED_VALUES: dict[str, Any] = {
    "stream": True,
    "stream_options": {"include_usage": True, "include_obfuscation": False},
    "parallel_tool_calls": False,
    "store": True,
    "prompt_cache_key": "tenant-1",
    "prompt_cache_options": {"mode": "explicit", "ttl": "30m"},
    "safety_identifier": "user-hash",
}


def test_every_ignored_parameter_has_a_sample() -> None:
    assert set(IGNORED_VALUES) == IGNORED_PARAMS


@pytest.mark.parametrize(("name", "value"), IGNORED_VALUES.items())
def test_ignored_parameters_are_accepted_and_not_forwarded(name: str, value: Any) -> None:
    call = _translate({name: value})
    assert call.request == BASELINE
    assert call.dropped == ()


NEUTRAL_VALUES = [
    ("n", 1),
    ("logprobs", False),
    ("top_logprobs", 0),
    ("logit_bias", {}),
    ("frequency_penalty", 0),
    ("presence_penalty", 0.0),
    ("modalities", ["text"]),
    ("verbosity", "medium"),
    ("response_format", {"type": "text"}),
    ("functions", []),
    ("function_call", "none"),
    ("function_call", "auto"),
    *((name, None) for name in UNSUPPORTED_PARAMS),
]


@pytest.mark.parametrize(("name", "value"), NEUTRAL_VALUES)
def test_neutral_values_of_unsupported_parameters_pass(name: str, value: Any) -> None:
    call = _translate({name: value})
    assert call.request == BASELINE
    assert call.dropped == ()


@pytest.mark.parametrize(("name", "entry"), INFERENCE_PARAMS.items())
def test_inference_params(name: str, entry: tuple[str, float]) -> None:
    key, maximum = entry
    assert _translate({name: 0.25}).request["inferenceConfig"] == {key: 0.25}
    assert _translate({name: maximum}).request["inferenceConfig"] == {key: maximum}


@pytest.mark.parametrize(
    ("fields", "max_tokens"),
    [
        ({"max_tokens": 10}, 10),
        ({"max_completion_tokens": 20}, 20),
        ({"max_tokens": 10, "max_completion_tokens": 20}, 20),
        ({"max_tokens": 10, "max_completion_tokens": None}, 10),
    ],
)
def test_max_completion_tokens_wins(fields: dict[str, Any], max_tokens: int) -> None:
    assert _translate(fields).request["inferenceConfig"] == {"maxTokens": max_tokens}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [(mode, converse) for mode, converse in TOOL_CHOICE_MODES.items()],
)
def test_tool_choice_modes(choice: str, expected: Any) -> None:
    tool = {"type": "function", "function": {"name": "f"}}
    call = _translate({"tools": [tool], "tool_choice": choice})
    if choice == "none":
        assert "toolConfig" not in call.request  # no tool blocks in this history
    else:
        config = call.request["toolConfig"]
        assert config.get("toolChoice") == expected
        assert [t["toolSpec"]["name"] for t in config["tools"]] == ["f"]


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        (ANTHROPIC, {"top_k": 7}),
        ("mistral.mistral-large-2407-v1:0", {"top_k": 7}),
        ("amazon.nova-lite-v1:0", {"inferenceConfig": {"topK": 7}}),
        ("us.amazon.nova-pro-v1:0", {"inferenceConfig": {"topK": 7}}),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-micro-v1:0",
            {"inferenceConfig": {"topK": 7}},
        ),
    ],
)
def test_top_k_placement(model_id: str, expected: dict[str, Any]) -> None:
    assert _translate({"top_k": 7}, model_id).request["additionalModelRequestFields"] == expected


def test_top_k_table_markers_are_matched() -> None:
    for marker, fields in TOP_K_FIELDS:
        call = _translate({"top_k": 3}, f"us.{marker}-something-v1:0")
        assert call.request["additionalModelRequestFields"] == fields(3)


@pytest.mark.parametrize("name", EXTRA_BODY_PARAMS)
def test_extra_body_params_are_forwarded_and_null_means_unset(name: str) -> None:
    value: Any = 5 if name == "top_k" else {"guardrail": {"x": 1}}
    forwarded = _translate({name: value}).request["additionalModelRequestFields"]
    assert forwarded == EXTRA_BODY_PARAMS[name](value, ANTHROPIC)
    assert _translate({name: None}).request == BASELINE


def test_raw_additional_fields_are_merged_last_and_deeply() -> None:
    fields = {"inferenceConfig": {"topK": 9, "x": 1}, "y": 2}
    call = _translate(
        {"top_k": 5, "additional_model_request_fields": fields}, "amazon.nova-pro-v1:0"
    )
    assert call.request["additionalModelRequestFields"] == {
        "inferenceConfig": {"topK": 9, "x": 1},
        "y": 2,
    }


@pytest.mark.parametrize(
    ("model_id", "refused"),
    [
        (ANTHROPIC, True),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", True),
        (
            "arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
            True,
        ),
        (LLAMA, False),
        ("amazon.nova-pro-v1:0", False),
    ],
)
def test_whitespace_stop_sequences(model_id: str, refused: bool) -> None:
    assert any(marker in model_id for marker in WHITESPACE_STOP_REFUSED) is refused
    if refused:
        with pytest.raises(UnsupportedParameterError):
            _translate({"stop": ["\n", "END"]}, model_id)
    else:
        config = _translate({"stop": ["\n", "END"]}, model_id).request["inferenceConfig"]
        assert config == {"stopSequences": ["\n", "END"]}


def test_temperature_above_bedrock_range_names_the_parameter() -> None:
    with pytest.raises(InvalidRequestError) as info:
        _translate({"temperature": 1.01})
    assert info.value.param == "temperature"
    assert "1" in info.value.message


@pytest.mark.parametrize(
    ("user", "metadata", "expected"),
    [
        (None, None, {}),
        ("", None, {}),
        ("alice@example.com", None, {"user": "alice@example.com"}),
        ("Zoë (admin)", None, {"user": "Zo_ _admin_"}),
        ("u", {"user": "m", "team": "a/b"}, {"user": "u", "team": "a/b"}),
        (None, {"user": "m"}, {"user": "m"}),
        (None, {"": "x", "\u00e9": "1", "_": "2"}, {"_": "1"}),
        (None, {"k": "v" * 300}, {"k": "v" * 256}),
        ("u", {f"k{i}": "v" for i in range(20)}, {"user": "u"} | {f"k{i}": "v" for i in range(15)}),
    ],
)
def test_request_metadata(
    user: str | None, metadata: dict[str, str] | None, expected: dict[str, str]
) -> None:
    result = request_metadata(user, metadata)
    assert result == expected
    assert len(result) <= 16
    for key, value in result.items():
        assert key and METADATA_PATTERN.fullmatch(key)
        assert METADATA_PATTERN.fullmatch(value)
