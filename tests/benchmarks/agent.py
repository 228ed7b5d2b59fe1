"""An agent-sized chat request, and the exact Converse body the gateway makes of it.

Claude Code and Codex CLI send the whole conversation every turn: a long system prompt, the
tool definitions and every earlier tool call and result, about 80 KB. Small requests measure
the gateway's fixed cost per request; this one measures what it costs per byte (parsing,
validation, translation, re-encoding), which must stay small next to botocore's own cost of
serialising and signing the same Converse body. So the pass-through is given the very body
the gateway's translator produces for this request (`converse_body`), not a smaller one.

Deterministic: the same text every run, no randomness, so runs compare.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.schemas.openai import ChatCompletionRequest
from gateway.translate.openai_chat.request import openai_to_converse_request

__all__ = ["TOOLS", "TURNS", "agent_request", "converse_body"]

TOOLS = 25
TURNS = 60  # messages after the system prompt
_WORDS = [
    "repository",
    "module",
    "function",
    "request",
    "response",
    "gateway",
    "stream",
    "token",
    "cache",
    "budget",
    "team",
    "key",
    "model",
    "region",
    "retry",
    "fallback",
    "schema",
    "record",
    "ledger",
    "price",
    "metric",
    "worker",
    "signal",
    "config",
    "test",
]


def _prose(seed: int, words: int) -> str:
    return " ".join(_WORDS[(seed * 7 + i * 13) % len(_WORDS)] for i in range(words))


def _tool(i: int) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": f"tool_{i:02d}",
            "description": _prose(i, 60),
            "parameters": {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": _prose(i + 1, 12)},
                    "pattern": {"type": "string", "description": _prose(i + 2, 12)},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
                    "flags": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["path"],
                "additionalProperties": False,
            },
        },
    }


def agent_request(model: str, *, stream: bool = False) -> dict[str, Any]:
    """The OpenAI body: system prompt, TURNS messages of tool calls and results, TOOLS tools."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": _prose(0, 2200)}]
    turn = 0
    while len(messages) < TURNS:  # user, assistant with a tool call, tool result, ...
        messages.append({"role": "user", "content": _prose(turn + 3, 60)})
        call_id = f"call_{turn:03d}"
        messages.append(
            {
                "role": "assistant",
                "content": _prose(turn + 5, 25),
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": f"tool_{turn % TOOLS:02d}",
                            "arguments": json.dumps({"path": f"src/file_{turn}.py", "limit": 50}),
                        },
                    }
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": call_id, "content": _prose(turn, 190)})
        turn += 1
    messages.append({"role": "user", "content": "Go on."})
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "tools": [_tool(i) for i in range(TOOLS)],
        "max_tokens": 256,
    }
    if stream:
        body["stream"] = True
    return body


def converse_body(model: str, model_id: str) -> dict[str, Any]:
    """What the gateway sends Bedrock for `agent_request(model)`: the translator's output."""
    req = ChatCompletionRequest.model_validate(agent_request(model))
    call = openai_to_converse_request(req, model_id=model_id)
    body: dict[str, Any] = json.loads(json.dumps(call.request))
    return body
