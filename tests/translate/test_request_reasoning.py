"""Extended thinking in requests: the effort table, the settings it forbids, max tokens."""

from __future__ import annotations

import typing
from typing import Any

import pytest

from gateway.errors import GatewayError, InvalidRequestError, UnsupportedParameterError
from gateway.schemas.openai import ChatCompletionRequest
from gateway.translate.openai_chat.request import (
    DEFAULT_REASONING_BUDGETS,
    ConverseCall,
    ModelOptions,
    openai_to_converse_request,
)
from gateway.translate.shared.reasoning import (
    ANSWER_TOKENS,
    EFFORT_LEVELS,
    MIN_BUDGET_TOKENS,
    THINKING_RULES,
)

MODEL = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
REASONING = ModelOptions(reasoning_supported=True)
USER = {"role": "user", "content": "Hi"}
WEATHER = {"type": "function", "function": {"name": "get_weather"}}


def _translate(
    fields: dict[str, Any],
    *,
    options: ModelOptions = REASONING,
    drop: bool = False,
    messages: list[dict[str, Any]] | None = None,
) -> ConverseCall:
    body = {"model": "m", "messages": messages or [USER], **fields}
    return openai_to_converse_request(
        ChatCompletionRequest.model_validate(body),
        model_id=MODEL,
        drop_unsupported=drop,
        options=options,
    )


def _thinking(call: ConverseCall) -> Any:
    return call.request.get("additionalModelRequestFields", {}).get("thinking")


def test_every_effort_openai_defines_has_a_row() -> None:
    efforts, _ = typing.get_args(ChatCompletionRequest.model_fields["reasoning_effort"].annotation)
    assert set(EFFORT_LEVELS) == set(typing.get_args(efforts))


@pytest.mark.parametrize(("effort", "level"), EFFORT_LEVELS.items())
def test_reasoning_effort_levels(effort: str, level: str | None) -> None:
    budgets = {"low": 1500, "medium": 5000, "high": 20000}
    call = _translate(
        {"reasoning_effort": effort},
        options=ModelOptions(reasoning_supported=True, reasoning_budgets=budgets),
    )
    if level is None:
        assert _thinking(call) is None
        assert "inferenceConfig" not in call.request
    else:
        assert _thinking(call) == {"type": "enabled", "budget_tokens": budgets[level]}
        assert call.request["inferenceConfig"] == {"maxTokens": budgets[level] + ANSWER_TOKENS}


def test_default_budgets_are_the_documented_ones() -> None:
    assert dict(ModelOptions().reasoning_budgets) == {"low": 1024, "medium": 4096, "high": 16384}
    assert ModelOptions().reasoning_budgets is DEFAULT_REASONING_BUDGETS
    assert min(DEFAULT_REASONING_BUDGETS.values()) >= MIN_BUDGET_TOKENS


@pytest.mark.parametrize(
    ("fields", "max_tokens"),
    [
        ({}, 2048 + ANSWER_TOKENS),
        ({"max_tokens": 2049}, 2049),
        ({"max_completion_tokens": 64000}, 64000),
        ({"max_tokens": 1, "max_completion_tokens": 3000}, 3000),
    ],
)
def test_max_tokens_leave_room_beyond_the_budget(fields: dict[str, Any], max_tokens: int) -> None:
    call = _translate({"thinking": {"type": "enabled", "budget_tokens": 2048}, **fields})
    assert call.request["inferenceConfig"]["maxTokens"] == max_tokens


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"max_tokens": 2048}, "max_tokens"),
        ({"max_completion_tokens": 100}, "max_completion_tokens"),
        ({"max_tokens": 9000, "max_completion_tokens": 2000}, "max_completion_tokens"),
    ],
)
def test_max_tokens_not_above_the_budget_are_refused(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        _translate({"thinking": {"type": "enabled", "budget_tokens": 2048}, **fields})
    assert info.value.param == param
    assert "2048" in info.value.message


# A value each rule refuses, and one it lets through unchanged.
RULE_VALUES: dict[str, tuple[Any, Any]] = {
    "temperature": (0.7, 1),
    "top_p": (0.9, 0.95),
    "top_k": (40, None),
    "tool_choice": ("required", "auto"),
}


def test_every_thinking_rule_has_sample_values() -> None:
    assert set(RULE_VALUES) == set(THINKING_RULES)


@pytest.mark.parametrize(("name", "values"), RULE_VALUES.items())
def test_thinking_rules_refuse_by_name(name: str, values: tuple[Any, Any]) -> None:
    refused, allowed = values
    fields = {"reasoning_effort": "low", "tools": [WEATHER]}
    with pytest.raises(UnsupportedParameterError) as info:
        _translate({**fields, name: refused})
    assert info.value.param == name
    if allowed is not None:
        assert _translate({**fields, name: allowed}).dropped == ()
    # Without thinking the same value is fine.
    assert name not in _translate({"tools": [WEATHER], name: refused}).dropped


@pytest.mark.parametrize(("name", "values"), RULE_VALUES.items())
def test_thinking_rules_drop_when_allowed(name: str, values: tuple[Any, Any]) -> None:
    call = _translate({"reasoning_effort": "low", "tools": [WEATHER], name: values[0]}, drop=True)
    assert call.dropped == (name,)
    assert _thinking(call) is not None
    assert set(call.request["inferenceConfig"]) == {"maxTokens"}
    assert set(call.request["additionalModelRequestFields"]) == {"thinking"}
    assert "toolChoice" not in call.request["toolConfig"]


def test_a_named_tool_choice_is_refused_while_thinking() -> None:
    choice = {"type": "function", "function": {"name": "get_weather"}}
    with pytest.raises(UnsupportedParameterError) as info:
        _translate({"reasoning_effort": "low", "tools": [WEATHER], "tool_choice": choice})
    assert info.value.param == "tool_choice"


@pytest.mark.parametrize("name", ["reasoning_effort", "thinking"])
def test_reasoning_on_a_model_without_it(name: str) -> None:
    value: Any = (
        "high" if name == "reasoning_effort" else {"type": "enabled", "budget_tokens": 2000}
    )
    with pytest.raises(UnsupportedParameterError) as info:
        _translate({name: value}, options=ModelOptions())
    assert info.value.param == name
    call = _translate({name: value, "temperature": 0.2}, options=ModelOptions(), drop=True)
    assert call.dropped == (name,)
    assert call.request["inferenceConfig"] == {"temperature": 0.2}


@pytest.mark.parametrize(
    "fields", [{"reasoning_effort": "none"}, {"thinking": {"type": "disabled"}}]
)
def test_asking_for_no_reasoning_is_fine_anywhere(fields: dict[str, Any]) -> None:
    call = _translate({**fields, "temperature": 0.2}, options=ModelOptions())
    assert call.dropped == ()
    assert call.request["inferenceConfig"] == {"temperature": 0.2}


THINKING_ERRORS: list[tuple[str, dict[str, Any], type[GatewayError], str]] = [
    (
        "both_effort_and_thinking",
        {"reasoning_effort": "low", "thinking": {"type": "enabled", "budget_tokens": 2000}},
        InvalidRequestError,
        "thinking",
    ),
    ("thinking_not_object", {"thinking": True}, InvalidRequestError, "thinking"),
    (
        "thinking_type_missing",
        {"thinking": {"budget_tokens": 2000}},
        InvalidRequestError,
        "thinking.type",
    ),
    (
        "thinking_type_unknown",
        {"thinking": {"type": "adaptive"}},
        InvalidRequestError,
        "thinking.type",
    ),
    (
        "thinking_budget_missing",
        {"thinking": {"type": "enabled"}},
        InvalidRequestError,
        "thinking.budget_tokens",
    ),
    (
        "thinking_budget_too_small",
        {"thinking": {"type": "enabled", "budget_tokens": MIN_BUDGET_TOKENS - 1}},
        InvalidRequestError,
        "thinking.budget_tokens",
    ),
    (
        "thinking_budget_text",
        {"thinking": {"type": "enabled", "budget_tokens": "2000"}},
        InvalidRequestError,
        "thinking.budget_tokens",
    ),
    (
        "thinking_budget_boolean",
        {"thinking": {"type": "enabled", "budget_tokens": True}},
        InvalidRequestError,
        "thinking.budget_tokens",
    ),
    (
        "thinking_unknown_key",
        {"thinking": {"type": "enabled", "budget_tokens": 2000, "display": "summarized"}},
        InvalidRequestError,
        "thinking.display",
    ),
    (
        "disabled_thinking_with_budget",
        {"thinking": {"type": "disabled", "budget_tokens": 2000}},
        InvalidRequestError,
        "thinking.budget_tokens",
    ),
    (
        "temperature_with_thinking",
        {"thinking": {"type": "enabled", "budget_tokens": 2000}, "temperature": 0},
        UnsupportedParameterError,
        "temperature",
    ),
]


@pytest.mark.parametrize(
    ("fields", "error", "param"),
    [c[1:] for c in THINKING_ERRORS],
    ids=[c[0] for c in THINKING_ERRORS],
)
def test_thinking_refusals(fields: dict[str, Any], error: type[GatewayError], param: str) -> None:
    for drop in (False, True):
        if drop and error is UnsupportedParameterError:
            continue  # dropping is tested above
        with pytest.raises(GatewayError) as info:
            _translate(fields, drop=drop)
        assert type(info.value) is error
        assert info.value.param == param


def _history(**reasoning: Any) -> list[dict[str, Any]]:
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    assistant = {"role": "assistant", "content": None, "tool_calls": [call], **reasoning}
    return [USER, assistant, {"role": "tool", "tool_call_id": "c1", "content": "Sunny"}]


@pytest.mark.parametrize(
    ("reasoning", "blocks"),
    [
        (
            {"reasoning_content": "Think.", "reasoning_signature": "sig"},
            [{"reasoningText": {"text": "Think.", "signature": "sig"}}],
        ),
        (
            {"reasoning_content": "Unsigned (gpt-oss)."},
            [{"reasoningText": {"text": "Unsigned (gpt-oss)."}}],
        ),
        ({"reasoning_signature": "sig"}, [{"reasoningText": {"text": "", "signature": "sig"}}]),
        (
            {"reasoning_redacted": ["AP8=", "AQID"]},
            [{"redactedContent": b"\x00\xff"}, {"redactedContent": b"\x01\x02\x03"}],
        ),
        ({"reasoning_content": "", "reasoning_redacted": []}, []),
    ],
)
def test_echoed_reasoning_comes_first_in_the_assistant_turn(
    reasoning: dict[str, Any], blocks: list[dict[str, Any]]
) -> None:
    call = _translate(
        {"reasoning_effort": "low", "tools": [WEATHER]}, messages=_history(**reasoning)
    )
    content = call.request["messages"][1]["content"]
    assert content[: len(blocks)] == [{"reasoningContent": block} for block in blocks]
    assert "toolUse" in content[len(blocks)]


def test_echoed_reasoning_is_left_out_when_thinking_is_off() -> None:
    history = _history(reasoning_content="Think.", reasoning_signature="sig")
    call = _translate({"tools": [WEATHER]}, messages=history)
    assert [list(block) for block in call.request["messages"][1]["content"]] == [["toolUse"]]


def test_reasoning_alone_does_not_make_an_assistant_turn() -> None:
    messages = [USER, {"role": "assistant", "reasoning_content": "Hm."}, USER]
    call = _translate({"reasoning_effort": "low"}, messages=messages)
    assert [m["role"] for m in call.request["messages"]] == ["user"]


@pytest.mark.parametrize("blob", ["not base64!", "AP8", "", "é"])
def test_broken_redacted_reasoning_is_refused(blob: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        _translate(
            {"reasoning_effort": "low", "tools": [WEATHER]},
            messages=_history(reasoning_redacted=["AP8=", blob]),
        )
    assert info.value.param == "messages[1].reasoning_redacted[1]"
