"""Bad Responses requests: each is a 400 naming the client's own field, and what is
dropped under `drop_unsupported_params` is listed. Also the reasoning codec."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from gateway.errors import InvalidRequestError, UnsupportedParameterError
from gateway.schemas.openai_responses import ResponsesRequest
from gateway.translate.openai_chat.request import ModelOptions
from gateway.translate.openai_responses.reasoning_codec import (
    DecodeError,
    Reasoning,
    decode_reasoning,
    encode_reasoning,
)
from gateway.translate.openai_responses.request import (
    INCLUDE_VALUES,
    RESPONSES_PARAMS,
    ResponsesCall,
    converse_call,
    prepare,
)

KEY = b"k" * 32
TOOL = {"type": "function", "name": "calc", "parameters": {"type": "object"}}


def translate(
    body: dict[str, Any], *, drop: bool = False, reasoning: bool = False
) -> ResponsesCall:
    prepared = prepare(
        ResponsesRequest.model_validate({"model": "m", **body}),
        reasoning_key=KEY,
        reasoning_supported=reasoning,
        drop_unsupported=drop,
    )
    return converse_call(
        prepared,
        model_id="anthropic.claude-3-7-sonnet-20250219-v1:0",
        drop_unsupported=drop,
        options=ModelOptions(reasoning_supported=reasoning),
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x", "truncation": "auto"}, "truncation"),
        ({"input": "x", "max_tool_calls": 3}, "max_tool_calls"),
        ({"input": "x", "background": True}, "background"),
        ({"input": "x", "conversation": "conv_1"}, "conversation"),
        ({"input": "x", "prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"input": "x", "include": ["message.output_text.logprobs"]}, "include[0]"),
        ({"input": "x", "top_logprobs": 3}, "top_logprobs"),
        (
            {
                "input": "x",
                "tools": [{"type": "web_search"}],
                "tool_choice": {"type": "web_search"},
            },
            "tool_choice",
        ),
        ({"input": "x", "tool_choice": {"type": "allowed_tools", "tools": []}}, "tool_choice"),
        ({"input": "x", "tools": [{"type": "frobnicate", "name": "patch"}]}, "tools[0].type"),
        (
            {"input": "x", "tools": [{"type": "custom", "name": "p", "format": {"type": "regex"}}]},
            "tools[0].format.type",
        ),
        (
            {
                "input": "x",
                "tools": [{"type": "custom", "name": "p", "format": {"type": "grammar"}}],
            },
            "tools[0].format.definition",
        ),
        (
            {
                "input": "x",
                "tools": [{"type": "namespace", "name": "n", "tools": [{"type": "mcp"}]}],
            },
            "tools[0].tools[0].type",
        ),
        (
            {"input": "x", "tools": [TOOL], "tool_choice": {"type": "function", "name": "nope"}},
            "tool_choice",
        ),
        ({"input": "x", "tools": [TOOL, TOOL]}, "tools[1].name"),
        (
            {"input": "x", "tools": [{**TOOL, "parameters": {"type": "array"}}]},
            "tools[0].parameters",
        ),
        (
            {"input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}},
            "text.format.name",
        ),
        (
            {
                "input": "x",
                "text": {
                    "format": {"type": "json_schema", "name": "A", "schema": {"type": "array"}}
                },
            },
            "text.format.schema",
        ),
        ({"input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        (
            {
                "input": [
                    {"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}
                ]
            },
            "input[0].content[0].file_id",
        ),
        (
            {
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_file", "file_url": "https://x/y.pdf"}],
                    }
                ]
            },
            "input[0].content[0].file_url",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "input[0].content[0].type",
        ),
        (
            {
                "input": [
                    {"role": "user", "content": "hi"},
                    {"type": "function_call", "call_id": "c", "name": "calc", "arguments": "[1]"},
                    {"type": "function_call_output", "call_id": "c", "output": "1"},
                ],
                "tools": [TOOL],
            },
            "input[1].arguments",
        ),
        ({"input": [{"role": "assistant", "content": "hi"}]}, "input"),
        (
            {
                "input": [
                    {"role": "user", "content": "hi"},
                    {"type": "reasoning", "summary": [], "encrypted_content": "gAAAA-openai"},
                ]
            },
            "input[1].encrypted_content",
        ),
        (
            {"input": "x", "reasoning": {"effort": "high"}, "max_output_tokens": 100},
            "max_output_tokens",
        ),
        ({"input": "x", "reasoning": {"effort": "high"}, "temperature": 0.2}, "temperature"),
    ],
)
def test_refused_with_the_clients_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        translate(body, reasoning="reasoning" in body)
    assert caught.value.param == param


def test_messages_speak_the_clients_words() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        translate(
            {"input": "x", "reasoning": {"effort": "high"}, "max_output_tokens": 100},
            reasoning=True,
        )
    assert "'max_output_tokens'" in caught.value.message
    assert "max_completion_tokens" not in caught.value.message


def test_unsupported_are_dropped_and_listed_on_request() -> None:
    body = {"input": "x", "truncation": "auto", "max_tool_calls": 2, "include": ["x.y"]}
    with pytest.raises(UnsupportedParameterError):
        translate(body)
    assert translate(body, drop=True).dropped == ("max_tool_calls", "truncation", "include[0]")


def test_reasoning_effort_on_a_plain_model_is_always_dropped_and_listed() -> None:
    call = translate({"input": "x", "reasoning": {"effort": "medium", "summary": "auto"}})
    assert call.dropped == ("reasoning",)
    assert "additionalModelRequestFields" not in call.converse.request


def test_hosted_tools_are_left_out_and_listed() -> None:
    call = translate(
        {
            "input": "x",
            "tools": [{"type": "web_search"}, TOOL, {"type": "mcp", "server_label": "s"}],
        }
    )
    assert call.dropped_tools == ("web_search", "mcp")
    assert [t["toolSpec"]["name"] for t in call.converse.request["toolConfig"]["tools"]] == ["calc"]


def test_only_hosted_tools_means_no_tool_config() -> None:
    call = translate({"input": "x", "tools": [{"type": "web_search"}]})
    assert "toolConfig" not in call.converse.request


def test_neutral_values_pass() -> None:
    call = translate(
        {"input": "x", "truncation": "disabled", "background": False, "top_logprobs": 0}
    )
    assert call.dropped == ()


def test_every_request_field_is_decided() -> None:
    assert set(RESPONSES_PARAMS) == set(ResponsesRequest.model_fields)


@pytest.mark.parametrize("value", sorted(INCLUDE_VALUES))
def test_include_values_are_accepted(value: str) -> None:
    assert translate({"input": "x", "include": [value]}).include_reasoning is INCLUDE_VALUES[value]


# -- the reasoning codec ---------------------------------------------------------------------

REASONING = Reasoning(
    text="Let me think… about ünïcode",
    signature="EqoBCkYIBxgC",
    redacted=(base64.b64encode(b"\x00\xff").decode(),),
)


def test_codec_round_trips_exactly() -> None:
    assert decode_reasoning(encode_reasoning(REASONING, key=KEY), key=KEY) == REASONING
    assert decode_reasoning(encode_reasoning(Reasoning(), key=KEY), key=KEY) == Reasoning()


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s.replace("gw1.", "gw2.", 1),
        lambda s: s[:-2] + ("AA" if not s.endswith("AA") else "BB"),
        lambda s: s.split(".")[0] + "." + s.split(".")[1][:-1] + "A." + s.split(".")[2],
        lambda s: s.rpartition(".")[0],
        lambda s: "",
        lambda s: "gw1..",
    ],
)
def test_codec_refuses_altered_content(mangle: Any) -> None:
    with pytest.raises(DecodeError):
        decode_reasoning(mangle(encode_reasoning(REASONING, key=KEY)), key=KEY)


def test_codec_refuses_another_key() -> None:
    with pytest.raises(DecodeError):
        decode_reasoning(encode_reasoning(REASONING, key=KEY), key=b"other" * 8)


def test_remote_images_are_listed_with_the_clients_path_and_fetched_bytes_used() -> None:
    body = {
        "model": "m",
        "input": [
            {"role": "user", "content": "look"},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "this"},
                    {"type": "input_image", "image_url": "https://img.example/a.png"},
                ],
            },
        ],
    }
    prepared = prepare(
        ResponsesRequest.model_validate(body), reasoning_key=KEY, reasoning_supported=False
    )
    assert prepared.remote_image_urls() == [
        ("https://img.example/a.png", "input[1].content[1].image_url")
    ]
    call = converse_call(
        prepared,
        model_id="anthropic.claude-3-7-sonnet-20250219-v1:0",
        images={"https://img.example/a.png": ("png", b"\x89PNG")},
    )
    (turn,) = call.converse.request["messages"]
    assert turn["content"][-1] == {"image": {"format": "png", "source": {"bytes": b"\x89PNG"}}}
