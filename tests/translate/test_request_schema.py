"""The OpenAI request models, and `validation_error_param` for their errors."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pydantic
import pytest

from gateway.schemas import errors
from gateway.schemas.openai import (
    ChatCompletionRequest,
    ImagePart,
    TextPart,
    validation_error_param,
)
from gateway.schemas.openai_embeddings import EmbeddingRequest

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
    # Messages and tool calls are TypedDicts: the unknown keys are dropped, not kept.
    assert req.messages[1] == {
        "role": "assistant",
        "content": "Hello",
        "refusal": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }


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
    assert message["role"] == "user"
    assert isinstance(message["content"], list)
    assert [type(part) for part in message["content"]] == [TextPart, ImagePart]


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


def test_validation_error_param_is_re_exported_from_its_own_module() -> None:
    assert validation_error_param is errors.validation_error_param


@pytest.mark.parametrize("first", ["gateway.schemas.errors", "gateway.schemas.openai"])
def test_the_schema_modules_import_in_either_order(first: str) -> None:
    """`openai` re-exports from `errors`, which reads `openai`'s models: no import cycle."""
    code = (
        f"import {first}\n"
        "import pydantic\n"
        "from gateway.schemas.errors import validation_error_param\n"
        "from gateway.schemas.openai import ChatCompletionRequest\n"
        "try:\n"
        "    ChatCompletionRequest.model_validate({'model': 'm', 'messages': []})\n"
        "except pydantic.ValidationError as exc:\n"
        "    print(validation_error_param(exc)[0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "messages"


def test_cache_marks_and_echoed_reasoning_are_parsed() -> None:
    mark = {"type": "ephemeral", "ttl": "5m"}
    req = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "a", "cache_control": mark}]},
                {
                    "role": "assistant",
                    "content": "b",
                    "reasoning_content": "r",
                    "reasoning_signature": "s",
                    "reasoning_redacted": ["AA=="],
                },
            ],
            "tools": [{"type": "function", "function": {"name": "f"}, "cache_control": mark}],
        }
    )
    user, assistant = req.messages
    assert user["role"] == "user" and isinstance(user["content"], list)
    assert isinstance(user["content"][0], TextPart)
    assert user["content"][0].cache_control is not None
    assert user["content"][0].cache_control.ttl == "5m"
    assert assistant["role"] == "assistant"
    assert (assistant.get("reasoning_content"), assistant.get("reasoning_signature")) == ("r", "s")
    assert assistant.get("reasoning_redacted") == ["AA=="]
    assert req.tools is not None and req.tools[0].get("cache_control") is not None
