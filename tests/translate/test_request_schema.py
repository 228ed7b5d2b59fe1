"""The OpenAI request models, and `validation_error_param` for their errors."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from gateway.schemas.openai import (
    AssistantMessage,
    ChatCompletionRequest,
    EmbeddingRequest,
    FunctionToolCall,
    ImagePart,
    TextPart,
    UserMessage,
    validation_error_param,
)

USER = {"role": "user", "content": "Hi"}


def test_extra_body_fields_are_kept_at_the_top_level() -> None:
    req = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [USER], "top_k": 5, "thinking": {"type": "enabled"}}
    )
    assert req.model_extra == {"top_k": 5, "thinking": {"type": "enabled"}}


def test_nested_models_ignore_what_clients_echo_back() -> None:
    echoed = {
        "role": "assistant",
        "content": "Hello",
        "refusal": None,
        "annotations": [{"type": "url_citation"}],
        "audio": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "f", "arguments": "{}"},
                "index": 0,
            }
        ],
    }
    req = ChatCompletionRequest.model_validate({"model": "m", "messages": [USER, echoed]})
    message = req.messages[1]
    assert isinstance(message, AssistantMessage)
    assert message.content == "Hello"
    assert message.tool_calls is not None
    assert isinstance(message.tool_calls[0], FunctionToolCall)
    assert message.model_extra in (None, {})


def test_messages_and_parts_are_discriminated() -> None:
    req = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "https://x/y.png", "detail": "original"},
                        },
                    ],
                }
            ],
        }
    )
    message = req.messages[0]
    assert isinstance(message, UserMessage)
    assert isinstance(message.content, list)
    assert [type(part) for part in message.content] == [TextPart, ImagePart]


def test_stop_accepts_more_sequences_than_openai() -> None:
    req = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [USER], "stop": [str(i) for i in range(10)]}
    )
    assert req.stop is not None and len(req.stop) == 10


def test_loosely_typed_ignored_parameters_accept_new_values() -> None:
    req = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [USER], "service_tier": "some-future-tier"}
    )
    assert req.service_tier == "some-future-tier"


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        (
            {"model": "m", "messages": [{"role": "user", "content": 1}]},
            "messages[0].content",
            "string",
        ),
        ({"model": "m", "messages": [{"role": "x", "content": "a"}]}, "messages[0].role", "'x'"),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages[0].content[0].text",
            "Field required",
        ),
        (
            {"model": "m", "messages": [USER], "tool_choice": {"type": "function", "function": {}}},
            "tool_choice.function.name",
            "Field required",
        ),
        (
            {
                "model": "m",
                "messages": [USER],
                "tool_choice": {
                    "type": "allowed_tools",
                    "allowed_tools": {"mode": "x", "tools": []},
                },
            },
            "tool_choice.allowed_tools.mode",
            "'auto' or 'required'",
        ),
        (
            {
                "model": "m",
                "messages": [USER],
                "response_format": {"type": "json_schema", "json_schema": {}},
            },
            "response_format.json_schema.name",
            "Field required",
        ),
        ({"model": "m", "messages": [USER], "n": 0}, "n", "greater than or equal to 1"),
        ({"model": "m", "messages": [USER], "metadata": {"k": 1}}, "metadata.k", "string"),
    ],
)
def test_validation_error_param(body: dict[str, Any], param: str, fragment: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        ChatCompletionRequest.model_validate(body)
    found, message = validation_error_param(info.value)
    assert found == param
    assert message.startswith(f"Invalid value for '{param}': ")
    assert fragment in message


@pytest.mark.parametrize("raw", ["[1, 2]", "{not json", "null"])
def test_validation_error_param_without_a_field(raw: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        ChatCompletionRequest.model_validate_json(raw)
    param, message = validation_error_param(info.value)
    assert param is None
    assert message


@pytest.mark.parametrize(
    "value",
    ["hello", ["a", "b"], [1, 2, 3], [[1, 2], [3]]],
)
def test_embedding_input_forms(value: Any) -> None:
    req = EmbeddingRequest.model_validate({"model": "e", "input": value})
    assert req.input == value
    assert req.encoding_format == "float"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "e", "input": []}, "input"),
        ({"model": "e", "input": ""}, "input"),
        ({"model": "e", "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "e", "input": "x", "dimensions": 0}, "dimensions"),
        ({"input": "x"}, "model"),
    ],
)
def test_embedding_request_errors(body: dict[str, Any], param: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        EmbeddingRequest.model_validate(body)
    assert validation_error_param(info.value)[0] == param
