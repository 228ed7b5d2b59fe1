"""Bedrock-safe tool names and ids: stable, valid, unique, and restorable."""

from __future__ import annotations

import re

import pytest

from gateway.schemas.openai import ChatCompletionRequest
from gateway.translate.openai_chat.request import openai_to_converse_request
from gateway.translate.shared.tools import ToolNames, bedrock_identifier

BEDROCK_IDENTIFIER = re.compile(r"[a-zA-Z0-9_-]{1,64}")

ODD_NAMES = [
    "github.create_issue",
    "mcp__server__tool:v2",
    "天气",
    "",
    " ",
    "x" * 65,
    "y" * 200,
    "naïve-name",
]


@pytest.mark.parametrize("name", ["get_weather", "Get-Time-2", "a", "z" * 64])
def test_valid_names_are_unchanged(name: str) -> None:
    assert bedrock_identifier(name) == name
    assert ToolNames([name]).bedrock(name) == name
    assert ToolNames([name]).restored() == {}


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_names_become_valid_stable_stand_ins(name: str) -> None:
    result = bedrock_identifier(name)
    assert BEDROCK_IDENTIFIER.fullmatch(result)
    assert result == bedrock_identifier(name)  # the same in every request
    assert ToolNames([name]).restored() == {result: name}


def test_names_that_sanitize_alike_stay_distinct() -> None:
    names = ToolNames(["a.b", "a b", "a:b"])
    mapped = {names.bedrock(name) for name in ("a.b", "a b", "a:b")}
    assert len(mapped) == 3
    assert all(m.startswith("a_b_") for m in mapped)


def test_a_stand_in_never_takes_a_name_the_client_uses() -> None:
    taken = bedrock_identifier("a.b")
    names = ToolNames(["a.b", taken])
    assert names.bedrock(taken) == taken
    assert names.bedrock("a.b") == bedrock_identifier("a.b", attempt=1)
    assert names.restored() == {bedrock_identifier("a.b", attempt=1): "a.b"}


def test_names_first_seen_later_are_registered_consistently() -> None:
    names = ToolNames(["get_weather"])
    first = names.bedrock("x.y")
    assert names.bedrock("x.y") == first
    assert names.restored() == {first: "x.y"}


def test_one_mapping_covers_tools_history_and_tool_choice() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call:1",
                        "type": "function",
                        "function": {"name": "fs.read", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call:1", "content": "data"},
        ],
        "tools": [{"type": "function", "function": {"name": "fs.read"}}],
        "tool_choice": {"type": "function", "function": {"name": "fs.read"}},
    }
    call = openai_to_converse_request(ChatCompletionRequest.model_validate(body), model_id="m")
    bedrock = bedrock_identifier("fs.read")
    assert call.tool_names == {bedrock: "fs.read"}
    config = call.request["toolConfig"]
    assert config["tools"][0]["toolSpec"]["name"] == bedrock
    assert config["toolChoice"] == {"tool": {"name": bedrock}}
    use = call.request["messages"][1]["content"][0]["toolUse"]
    result = call.request["messages"][2]["content"][0]["toolResult"]
    assert use["name"] == bedrock
    assert use["toolUseId"] == result["toolUseId"] == bedrock_identifier("call:1")
