"""Bodies nested to the limit, and one level past it, on every surface, over the real path.

`gateway.server.bodies.MAX_NESTING` is what orjson can write back out. A body nested that
deep, in any field that carries free-form JSON (tool schemas, tool inputs, extra fields),
must be answered by every later step (translation, botocore's serializer, Messages'
InvokeModel body, the ledger) without a 5xx; one level more is a 400 in the surface's
shape. Tool-call arguments arrive as JSON *text*, not nesting of the body, so they have
their own case: nested past what the parser takes is a 400 naming the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.server.bodies import MAX_NESTING
from tests.fullpath.conftest import API_KEY, GatewayFactory, RunningGateway, ledger
from tests.fullpath.messages_support import SONNET, messages_models
from tests.servers import ServerThread

HOLE = "__HOLE__"


def hole_depth(value: Any) -> int | None:
    """How many containers hold the `HOLE` string in `value`, if it is there."""
    children = value.values() if isinstance(value, dict) else value
    if not isinstance(value, (dict, list)):
        return 0 if value == HOLE else None
    for child in children:
        if (depth := hole_depth(child)) is not None:
            return depth + 1
    return None


def nested_to(body: dict[str, Any], total: int) -> bytes:
    """`body` as JSON text with its `HOLE` string replaced by objects nested so deep that the
    whole body nests exactly `total` levels (written by hand: json.dumps would recurse)."""
    text = json.dumps(body)
    outer = hole_depth(body)
    assert outer is not None and text.count(f'"{HOLE}"') == 1
    inner = total - outer
    filling = '{"a":' * (inner - 1) + "{}" + "}" * (inner - 1)
    return text.replace(f'"{HOLE}"', filling).encode()


CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
MESSAGES = "/v1/messages"

_chat_messages = [{"role": "user", "content": "hi"}]
_tool_schema = {"type": "object", "properties": {"deep": HOLE}}

PLACES: dict[str, tuple[str, dict[str, Any]]] = {
    "chat tool schema": (
        CHAT,
        {
            "model": "claude-3-5-sonnet",
            "messages": _chat_messages,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": _tool_schema}}],
        },
    ),
    "chat extra fields": (
        CHAT,
        {
            "model": "claude-3-5-sonnet",
            "messages": _chat_messages,
            "additional_model_request_fields": {"deep": HOLE},
        },
    ),
    "chat json schema": (
        CHAT,
        {
            "model": "claude-3-5-sonnet",
            "messages": _chat_messages,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "s", "schema": _tool_schema},
            },
        },
    ),
    "responses tool schema": (
        RESPONSES,
        {
            "model": "claude-3-5-sonnet",
            "input": "hi",
            "store": False,
            "tools": [{"type": "function", "name": "f", "parameters": _tool_schema}],
        },
    ),
    "messages tool schema": (
        MESSAGES,
        {
            "model": SONNET,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "f", "input_schema": _tool_schema}],
        },
    ),
    "messages tool input": (
        MESSAGES,
        {
            "model": SONNET,
            "max_tokens": 64,
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"deep": HOLE}}
                    ],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}],
                },
            ],
        },
    ),
}


@pytest.fixture
def gateway(
    start_gateway: GatewayFactory, emulator: ServerThread, tmp_path: Path
) -> RunningGateway:
    return start_gateway(models=messages_models(emulator.url, tmp_path))


def _post(gateway: RunningGateway, path: str, body: bytes) -> Any:
    headers = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
    if path == MESSAGES:
        headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01", **headers}
    with gateway.http() as http:
        return http.post(path, content=body, headers=headers)


def _error_message(path: str, response: Any) -> str:
    error = response.json()["error"]
    if path == MESSAGES:
        assert response.json()["type"] == "error"
    return str(error["message"])


@pytest.mark.parametrize("place", sorted(PLACES))
def test_a_body_nested_to_the_limit_is_answered(gateway: RunningGateway, place: str) -> None:
    path, body = PLACES[place]
    response = _post(gateway, path, nested_to(body, MAX_NESTING))
    assert response.status_code < 500, response.text
    assert response.status_code != 400 or "nested" not in response.text
    assert len(ledger(gateway)) == 1


@pytest.mark.parametrize("place", sorted(PLACES))
def test_one_level_deeper_is_a_400_in_the_surface_shape(
    gateway: RunningGateway, place: str
) -> None:
    path, body = PLACES[place]
    response = _post(gateway, path, nested_to(body, MAX_NESTING + 1))
    assert response.status_code == 400, response.text
    assert f"nested more than {MAX_NESTING} levels" in _error_message(path, response)


def _deep_arguments(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("levels", [MAX_NESTING, 5_000])
def test_deeply_nested_tool_call_arguments_never_fail_the_gateway(
    gateway: RunningGateway, levels: int
) -> None:
    body = {
        "model": "claude-3-5-sonnet",
        "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        ],
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": _deep_arguments(levels)},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
        ],
    }
    response = _post(gateway, CHAT, json.dumps(body).encode())
    # Not an object (a list), so a 400 naming the arguments: never a 5xx, however deep.
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "messages[1].tool_calls[0].function.arguments"
