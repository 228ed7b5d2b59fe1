"""Every way a chat request is refused: the exact error class, status and `param`.

Shape errors are the pydantic model's job (the app turns them into a 400 through
`validation_error_param`); what Bedrock cannot honour is the translator's.
"""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from gateway.errors import GatewayError, InvalidRequestError, UnsupportedParameterError
from gateway.schemas.openai import ChatCompletionRequest, validation_error_param
from gateway.translate.openai_chat.params import UNSUPPORTED_PARAMS
from gateway.translate.openai_chat.request import openai_to_converse_request

ANTHROPIC = "anthropic.claude-3-5-sonnet-20240620-v1:0"
USER = {"role": "user", "content": "Hi"}
WEATHER = {"type": "function", "function": {"name": "get_weather"}}


def _body(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [USER], **fields}


def _call(call_id: str = "call_1", arguments: str = "{}", name: str = "get_weather") -> Any:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _assistant(*calls: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": list(calls)}


def _with_part(part: dict[str, Any], role: str = "user") -> dict[str, Any]:
    message = {"role": role, "content": [{"type": "text", "text": "Look:"}, part]}
    return {"model": "m", "messages": [USER, message] if role == "assistant" else [message]}


def _image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


PNG_URL = "data:image/png;base64,iVBORw0KGgo="


SHAPE_ERRORS = [
    (
        "content_not_text",
        {"model": "m", "messages": [{"role": "user", "content": 1}]},
        "messages[0].content",
    ),
    (
        "unknown_role",
        {"model": "m", "messages": [{"role": "robot", "content": "x"}]},
        "messages[0].role",
    ),
    ("missing_role", {"model": "m", "messages": [{"content": "x"}]}, "messages[0].role"),
    ("no_messages", {"model": "m", "messages": []}, "messages"),
    ("messages_missing", {"model": "m"}, "messages"),
    ("model_missing", {"messages": [USER]}, "model"),
    (
        "bad_part",
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
        "messages[0].content[0].text",
    ),
    (
        "unknown_part_type",
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "video"}]}]},
        "messages[0].content[0].type",
    ),
    (
        "arguments_not_string",
        {
            "model": "m",
            "messages": [
                USER,
                _assistant(
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}
                ),
            ],
        },
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        "tool_message_without_id",
        {"model": "m", "messages": [USER, {"role": "tool", "content": "x"}]},
        "messages[1].tool_call_id",
    ),
    ("temperature_above_openai_range", _body(temperature=2.5), "temperature"),
    ("top_p_negative", _body(top_p=-0.1), "top_p"),
    ("max_tokens_zero", _body(max_tokens=0), "max_tokens"),
    ("stop_not_text", _body(stop=[1]), "stop[0]"),
    ("more_stop_sequences_than_bedrock_takes", _body(stop=["x"] * 2501), "stop"),
    ("metadata_value_not_text", _body(metadata={"a": 1}), "metadata.a"),
    ("tool_choice_unknown_mode", _body(tool_choice="always"), "tool_choice"),
    (
        "tool_choice_without_name",
        _body(tool_choice={"type": "function", "function": {}}),
        "tool_choice.function.name",
    ),
    (
        "tool_without_name",
        _body(tools=[{"type": "function", "function": {}}]),
        "tools[0].function.name",
    ),
    ("response_format_unknown", _body(response_format={"type": "xml"}), "response_format.type"),
    (
        "cache_control_unknown_type",
        {
            "model": "m",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "a", "cache_control": {"type": "forever"}}
                    ],
                }
            ],
        },
        "messages[0].content[0].cache_control.type",
    ),
    (
        "reasoning_redacted_not_text",
        {"model": "m", "messages": [USER, {"role": "assistant", "reasoning_redacted": [1]}]},
        "messages[1].reasoning_redacted[0]",
    ),
    ("reasoning_effort_unknown", _body(reasoning_effort="extreme"), "reasoning_effort"),
]


@pytest.mark.parametrize(
    ("body", "param"), [c[1:] for c in SHAPE_ERRORS], ids=[c[0] for c in SHAPE_ERRORS]
)
def test_the_model_rejects_malformed_requests(body: dict[str, Any], param: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        ChatCompletionRequest.model_validate(body)
    assert validation_error_param(info.value)[0] == param


TRANSLATION_ERRORS: list[tuple[str, dict[str, Any], type[GatewayError], str]] = [
    (
        "only_system",
        {"model": "m", "messages": [{"role": "system", "content": "Be nice."}]},
        InvalidRequestError,
        "messages",
    ),
    (
        "assistant_first",
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "assistant", "content": "Hello"},
                USER,
            ],
        },
        InvalidRequestError,
        "messages",
    ),
    (
        "tool_call_first",
        {
            "model": "m",
            "messages": [
                _assistant(_call()),
                {"role": "tool", "tool_call_id": "call_1", "content": "x"},
            ],
            "tools": [WEATHER],
        },
        InvalidRequestError,
        "messages",
    ),
    (
        "empty_user_message",
        {
            "model": "m",
            "messages": [
                USER,
                {"role": "assistant", "content": "a"},
                {"role": "user", "content": "  "},
            ],
        },
        InvalidRequestError,
        "messages[2].content",
    ),
    (
        "user_message_of_blank_parts",
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
        InvalidRequestError,
        "messages[0].content",
    ),
    (
        "function_role",
        {"model": "m", "messages": [USER, {"role": "function", "name": "f", "content": "x"}]},
        UnsupportedParameterError,
        "messages[1].role",
    ),
    (
        "assistant_function_call",
        {
            "model": "m",
            "messages": [
                USER,
                {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}},
            ],
        },
        UnsupportedParameterError,
        "messages[1].function_call",
    ),
    (
        "image_malformed",
        _with_part(_image("data:image/png;base64,iVBORw0K!!!")),
        InvalidRequestError,
        "messages[0].content[1].image_url",
    ),
    (
        "image_wrong_mime",
        _with_part(_image("data:image/tiff;base64,SUkqAA==")),
        InvalidRequestError,
        "messages[0].content[1].image_url",
    ),
    (
        "image_in_assistant_turn",
        _with_part(_image(PNG_URL), role="assistant"),
        InvalidRequestError,
        "messages[1].content[1]",
    ),
    (
        "document_unsupported_type",
        _with_part(
            {
                "type": "file",
                "file": {"file_data": "data:application/rtf;base64,e1xydGYx", "filename": "a.rtf"},
            }
        ),
        InvalidRequestError,
        "messages[0].content[1]",
    ),
    (
        "document_file_id",
        _with_part({"type": "file", "file": {"file_id": "file-abc123"}}),
        UnsupportedParameterError,
        "messages[0].content[1].file.file_id",
    ),
    (
        "reasoning_on_unsupported_model",
        _body(reasoning_effort="low"),
        UnsupportedParameterError,
        "reasoning_effort",
    ),
    (
        "thinking_on_unsupported_model",
        _body(thinking={"type": "enabled", "budget_tokens": 1024}),
        UnsupportedParameterError,
        "thinking",
    ),
    (
        "response_schema_not_an_object",
        _body(
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "list", "schema": {"type": "array"}},
            }
        ),
        InvalidRequestError,
        "response_format.json_schema.schema",
    ),
    (
        "cache_lifetime_of_a_day",
        _with_part({**_image(PNG_URL), "cache_control": {"type": "ephemeral", "ttl": "24h"}}),
        UnsupportedParameterError,
        "messages[0].content[1].cache_control.ttl",
    ),
    (
        "audio_part",
        {
            "model": "m",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
                    ],
                }
            ],
        },
        UnsupportedParameterError,
        "messages[0].content[0]",
    ),
    (
        "broken_tool_call_json",
        {
            "model": "m",
            "messages": [
                USER,
                _assistant(_call(), _call("call_2", '{"city": "Par')),
                {"role": "tool", "tool_call_id": "call_1", "content": "x"},
            ],
            "tools": [WEATHER],
        },
        InvalidRequestError,
        "messages[1].tool_calls[1].function.arguments",
    ),
    (
        "tool_call_json_not_object",
        {
            "model": "m",
            "messages": [
                USER,
                {"role": "assistant", "content": "a"},
                USER,
                _assistant(_call(arguments="[1, 2]")),
            ],
            "tools": [WEATHER],
        },
        InvalidRequestError,
        "messages[3].tool_calls[0].function.arguments",
    ),
    (
        # The standard library runs out of recursion on it: a 400, not a 500.
        "tool_call_json_nested_too_deeply",
        {
            "model": "m",
            "messages": [
                USER,
                _assistant(_call(arguments='{"a": ' + "[" * 5000 + "]" * 5000 + "}")),
            ],
            "tools": [WEATHER],
        },
        InvalidRequestError,
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        # More digits than Python converts to an int (a ValueError): a 400, not a 500.
        "tool_call_json_number_too_long",
        {
            "model": "m",
            "messages": [USER, _assistant(_call(arguments='{"n": ' + "1" * 5000 + "}"))],
            "tools": [WEATHER],
        },
        InvalidRequestError,
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        "custom_tool_call",
        {
            "model": "m",
            "messages": [
                USER,
                _assistant({"id": "c", "type": "custom", "custom": {"name": "f", "input": "x"}}),
            ],
            "tools": [WEATHER],
        },
        UnsupportedParameterError,
        "messages[1].tool_calls[0]",
    ),
    (
        "tool_choice_unknown_tool",
        _body(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_time"}}),
        InvalidRequestError,
        "tool_choice",
    ),
    (
        "tool_choice_named_without_tools",
        _body(tool_choice={"type": "function", "function": {"name": "get_time"}}),
        InvalidRequestError,
        "tool_choice",
    ),
    (
        "tool_choice_required_without_tools",
        _body(tool_choice="required"),
        InvalidRequestError,
        "tool_choice",
    ),
    (
        "tool_choice_allowed_tools",
        _body(
            tools=[WEATHER],
            tool_choice={"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}},
        ),
        UnsupportedParameterError,
        "tool_choice",
    ),
    (
        "tool_choice_custom",
        _body(tools=[WEATHER], tool_choice={"type": "custom", "custom": {"name": "get_weather"}}),
        UnsupportedParameterError,
        "tool_choice",
    ),
    (
        "custom_tool",
        _body(tools=[WEATHER, {"type": "custom", "custom": {"name": "grammar"}}]),
        UnsupportedParameterError,
        "tools[1]",
    ),
    (
        "duplicate_tool_names",
        _body(tools=[WEATHER, WEATHER]),
        InvalidRequestError,
        "tools[1].function.name",
    ),
    (
        "tool_schema_not_object",
        _body(
            tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]
        ),
        InvalidRequestError,
        "tools[0].function.parameters",
    ),
    ("temperature_above_bedrock_range", _body(temperature=1.5), InvalidRequestError, "temperature"),
    ("whitespace_stop_on_anthropic", _body(stop="\n"), UnsupportedParameterError, "stop"),
    (
        "unknown_extra_field",
        _body(reasoning={"effort": "high"}),
        UnsupportedParameterError,
        "reasoning",
    ),
    ("misspelt_parameter", _body(max_token=10), UnsupportedParameterError, "max_token"),
    ("top_k_not_integer", _body(top_k="40"), InvalidRequestError, "top_k"),
    ("top_k_negative", _body(top_k=-1), InvalidRequestError, "top_k"),
    (
        "additional_fields_not_object",
        _body(additional_model_request_fields=["top_k", 5]),
        InvalidRequestError,
        "additional_model_request_fields",
    ),
]


@pytest.mark.parametrize(
    ("body", "error", "param"),
    [c[1:] for c in TRANSLATION_ERRORS],
    ids=[c[0] for c in TRANSLATION_ERRORS],
)
def test_the_translator_refuses(
    body: dict[str, Any], error: type[GatewayError], param: str
) -> None:
    req = ChatCompletionRequest.model_validate(body)
    with pytest.raises(GatewayError) as info:
        openai_to_converse_request(req, model_id=ANTHROPIC)
    assert type(info.value) is error
    assert info.value.status == 400
    assert info.value.param == param
    assert info.value.to_openai()["error"]["param"] == param


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            '{"city": "Par',
            "Tool call arguments must be a JSON object; this is not valid JSON "
            "(Unterminated string starting at).",
        ),
        ("[1, 2]", "Tool call arguments must be a JSON object."),
        ("NaN", "Tool call arguments must be a JSON object."),
        (
            '{"a": ' + "[" * 5000 + "]" * 5000 + "}",
            "Tool call arguments must be a JSON object; this is nested too deeply to read.",
        ),
        (
            '{"n": ' + "1" * 5000 + "}",
            "Tool call arguments must be a JSON object; this holds a number too long to read.",
        ),
    ],
)
def test_tool_call_arguments_errors_say_why(arguments: str, message: str) -> None:
    body = {"model": "m", "messages": [USER, _assistant(_call(arguments=arguments))]}
    req = ChatCompletionRequest.model_validate({**body, "tools": [WEATHER]})
    with pytest.raises(InvalidRequestError) as info:
        openai_to_converse_request(req, model_id=ANTHROPIC)
    assert info.value.message == message


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ("", {}),
        (" \n\t", {}),
        ('{"n": 18446744073709551616}', {"n": 18446744073709551616}),  # exact, not a float
        ('{"s": "\\ud800"}', {"s": "\ud800"}),  # a lone surrogate, as json.loads reads it
        ('{"a": {"b": [1, 2.5]}}', {"a": {"b": [1, 2.5]}}),
    ],
)
def test_tool_call_arguments_are_read_as_json_loads_reads_them(
    arguments: str, expected: dict[str, Any]
) -> None:
    body = {"model": "m", "messages": [USER, _assistant(_call(arguments=arguments))]}
    req = ChatCompletionRequest.model_validate({**body, "tools": [WEATHER]})
    call = openai_to_converse_request(req, model_id=ANTHROPIC)
    (tool_use,) = [b["toolUse"] for b in call.request["messages"][1]["content"]]
    assert tool_use["input"] == expected


# A value each unsupported parameter must be refused for (its neutral values pass).
UNSUPPORTED_VALUES: dict[str, Any] = {
    "n": 2,
    "logprobs": True,
    "top_logprobs": 5,
    "logit_bias": {"50256": -100},
    "seed": 0,
    "frequency_penalty": 0.5,
    "presence_penalty": -1,
    "audio": {"format": "mp3", "voice": "alloy"},
    "modalities": ["text", "audio"],
    "prediction": {"type": "content", "content": "draft"},
    "web_search_options": {},
    "moderation": {"model": "omni-moderation-latest"},
    "verbosity": "low",
    "functions": [{"name": "f"}],
    "function_call": {"name": "f"},
}


def test_every_unsupported_parameter_has_a_refused_value() -> None:
    assert set(UNSUPPORTED_VALUES) == set(UNSUPPORTED_PARAMS)


@pytest.mark.parametrize(("name", "value"), UNSUPPORTED_VALUES.items())
def test_each_unsupported_parameter_is_refused_by_name(name: str, value: Any) -> None:
    req = ChatCompletionRequest.model_validate(_body(**{name: value}))
    with pytest.raises(UnsupportedParameterError) as info:
        openai_to_converse_request(req, model_id=ANTHROPIC)
    assert info.value.param == name
    assert info.value.status == 400
    assert info.value.code == "unsupported_parameter"


@pytest.mark.parametrize(("name", "value"), UNSUPPORTED_VALUES.items())
def test_each_unsupported_parameter_can_be_dropped(name: str, value: Any) -> None:
    req = ChatCompletionRequest.model_validate(_body(**{name: value}))
    call = openai_to_converse_request(req, model_id=ANTHROPIC, drop_unsupported=True)
    assert call.dropped == (name,)
    assert call.request == {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}
