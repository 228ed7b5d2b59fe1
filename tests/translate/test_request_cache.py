"""Prompt-cache points: where `cache_control` puts them, lifetimes, and `auto_cache_system`."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import InvalidRequestError, UnsupportedParameterError
from gateway.schemas.openai import ChatCompletionRequest
from gateway.translate.openai_chat.request import (
    ConverseCall,
    ModelOptions,
    openai_to_converse_request,
)
from gateway.translate.shared.cache_points import MAX_CACHE_POINTS, count_cache_points

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
POINT = {"cachePoint": {"type": "default"}}
HOUR = {"type": "ephemeral", "ttl": "1h"}
DAY = {"type": "ephemeral", "ttl": "24h"}  # Bedrock has no such lifetime
POINT_1H = {"cachePoint": {"type": "default", "ttl": "1h"}}
EPHEMERAL = {"type": "ephemeral"}


def _text(text: str, control: dict[str, Any] | None = None) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "text", "text": text}
    if control is not None:
        part["cache_control"] = control
    return part


def _translate(body: dict[str, Any], **kwargs: Any) -> ConverseCall:
    req = ChatCompletionRequest.model_validate({"model": "m", **body})
    return openai_to_converse_request(req, model_id=MODEL, **kwargs)


def _with_mark(control: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A request per place a cache mark can sit, keyed by the mark's JSON path."""
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    return {
        "messages[0].content[0]": {
            "messages": [{"role": "system", "content": [_text("Be kind.", control)]}, _user()]
        },
        "messages[0].content[1]": {
            "messages": [{"role": "user", "content": [_text("a"), _text("b", control)]}]
        },
        "messages[1].content[0]": {
            "messages": [_user(), {"role": "assistant", "content": [_text("Hello", control)]}]
        },
        "messages[2].content[0]": {
            "messages": [
                _user(),
                {"role": "assistant", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c1", "content": [_text("42", control)]},
            ],
            "tools": [{"type": "function", "function": {"name": "f"}}],
        },
        "tools[0]": {
            "messages": [_user()],
            "tools": [{"type": "function", "function": {"name": "f"}, "cache_control": control}],
        },
    }


def _user() -> dict[str, Any]:
    return {"role": "user", "content": "Hi"}


@pytest.mark.parametrize(("param", "body"), _with_mark(EPHEMERAL).items())
def test_each_place_gets_one_cache_point(param: str, body: dict[str, Any]) -> None:
    assert count_cache_points(_translate(body).request) == 1


@pytest.mark.parametrize(("param", "body"), _with_mark(HOUR).items())
def test_each_place_takes_a_one_hour_cache_point(param: str, body: dict[str, Any]) -> None:
    request = _translate(body).request
    assert count_cache_points(request) == 1
    assert POINT_1H in _all_blocks(request)


@pytest.mark.parametrize(("param", "body"), _with_mark(EPHEMERAL).items())
def test_a_24h_retention_makes_every_unmarked_lifetime_an_hour(
    param: str, body: dict[str, Any]
) -> None:
    request = _translate({**body, "prompt_cache_retention": "24h"}).request
    assert POINT_1H in _all_blocks(request)
    in_memory = _translate({**body, "prompt_cache_retention": "in_memory"}).request
    assert POINT in _all_blocks(in_memory) and POINT_1H not in _all_blocks(in_memory)


@pytest.mark.parametrize(("param", "body"), _with_mark({**HOUR, "ttl": "5m"}).items())
def test_an_explicit_five_minutes_beats_a_24h_retention(param: str, body: dict[str, Any]) -> None:
    request = _translate({**body, "prompt_cache_retention": "24h"}).request
    assert POINT in _all_blocks(request) and POINT_1H not in _all_blocks(request)


@pytest.mark.parametrize("retention", ["1h", "forever", ""])
def test_an_unknown_retention_is_refused_by_name(retention: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        _translate({"messages": [_user()], "prompt_cache_retention": retention})
    assert info.value.param == "prompt_cache_retention"


def test_a_24h_retention_gives_the_auto_system_point_an_hour() -> None:
    body = {
        "messages": [{"role": "system", "content": "Be brief."}, _user()],
        "prompt_cache_retention": "24h",
    }
    request = _translate(body, options=ModelOptions(auto_cache_system=True)).request
    assert request["system"][-1] == POINT_1H


def _all_blocks(request: Any) -> list[Any]:
    blocks = list(request.get("system", []))
    for message in request["messages"]:
        blocks.extend(message["content"])
    blocks.extend(request.get("toolConfig", {}).get("tools", []))
    return blocks


@pytest.mark.parametrize(("param", "body"), _with_mark(DAY).items())
def test_a_lifetime_bedrock_cannot_take_is_refused_by_path(
    param: str, body: dict[str, Any]
) -> None:
    with pytest.raises(UnsupportedParameterError) as info:
        _translate(body)
    assert info.value.param == f"{param}.cache_control.ttl"


@pytest.mark.parametrize(("param", "body"), _with_mark(DAY).items())
def test_dropping_a_lifetime_keeps_the_cache_point(param: str, body: dict[str, Any]) -> None:
    call = _translate(body, drop_unsupported=True)
    assert call.dropped == (f"{param}.cache_control.ttl",)
    assert count_cache_points(call.request) == 1


@pytest.mark.parametrize(
    ("parts", "content"),
    [
        ([_text(" ", EPHEMERAL), _text("a")], [{"text": "a"}]),
        ([_text("a", EPHEMERAL), _text(" ", EPHEMERAL)], [{"text": "a"}, POINT]),
        ([_text("a"), _text("", EPHEMERAL), _text("b")], [{"text": "a"}, POINT, {"text": "b"}]),
    ],
    ids=["nothing-before", "no-two-in-a-row", "blank-marks-its-place"],
)
def test_a_blank_marked_part_marks_its_place(
    parts: list[dict[str, Any]], content: list[dict[str, Any]]
) -> None:
    call = _translate({"messages": [{"role": "user", "content": parts}]})
    assert call.request["messages"][0]["content"] == content


AUTO = ModelOptions(auto_cache_system=True)


def test_auto_cache_system_needs_a_system_prompt() -> None:
    call = _translate({"messages": [_user()]}, options=AUTO)
    assert "system" not in call.request
    assert count_cache_points(call.request) == 0


def test_auto_cache_system_counts_cache_points_everywhere() -> None:
    tools = [
        {"type": "function", "function": {"name": f"f{i}"}, "cache_control": EPHEMERAL}
        for i in range(MAX_CACHE_POINTS - 1)
    ]
    system = {"role": "system", "content": "Be kind."}
    below = _translate({"messages": [system, _user()], "tools": tools}, options=AUTO)
    assert below.request["system"][-1] == POINT
    assert count_cache_points(below.request) == MAX_CACHE_POINTS

    at_limit = [*tools, {**tools[0], "function": {"name": "g"}}]
    full = _translate({"messages": [system, _user()], "tools": at_limit}, options=AUTO)
    assert full.request["system"] == [{"text": "Be kind."}]
    assert count_cache_points(full.request) == MAX_CACHE_POINTS


def test_moving_tool_results_first_never_leaves_two_cache_points_together() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = {
        "messages": [
            _user(),
            {"role": "assistant", "tool_calls": [call]},
            {"role": "user", "content": [_text("Also this.", EPHEMERAL)]},
            {"role": "tool", "tool_call_id": "c1", "content": [_text("42", EPHEMERAL)]},
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }
    content = _translate(body).request["messages"][2]["content"]
    assert [next(iter(block)) for block in content] == ["toolResult", "text", "cachePoint"]
