"""`POST /v1/messages/count_tokens` -> Bedrock CountTokens, or an estimate where it has none.

CountTokens takes the request in the form of the operation that would run it: for Claude
the InvokeModel body (`invokeModel.body`), built by the same code as the real call so the
count is the count of what would be sent (betas filtered, `model` out). A count request
has no `max_tokens`, and the Invoke body requires one: 1 stands in (it does not change the
input). For a model Bedrock cannot count, an estimate from the text, and the response
header says it is one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import orjson

from gateway.translate.anthropic_messages.invoke import InvokeCall, messages_to_invoke_body

__all__ = ["ESTIMATE_HEADER", "count_tokens_input", "estimate_input_tokens"]

# `x-gateway-token-count: estimated` on an answer that is ours, not Bedrock's.
ESTIMATE_HEADER = "x-gateway-token-count"


def count_tokens_input(
    body: Mapping[str, Any], *, header_betas: list[str], allowed_betas: Collection[str]
) -> tuple[dict[str, Any], InvokeCall]:
    """The CountTokens `input` for a Claude model, and the Invoke call it counts."""
    call = messages_to_invoke_body(
        {"max_tokens": 1, **body},
        header_betas=header_betas,
        allowed_betas=allowed_betas,
        # Counting never fails on a parameter the real call would have to refuse.
        drop_unsupported=True,
    )
    return {"invokeModel": {"body": call.body}}, call


def estimate_input_tokens(body: Mapping[str, Any]) -> int:
    """About four characters a token over the text of system, messages and tools."""
    characters = len(_text(body.get("system"))) + len(_text(body.get("messages")))
    tools = body.get("tools")
    if tools:
        characters += len(orjson.dumps(tools))
    return max(1, -(-characters // 4))


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(_text(item) for item in value)
    if isinstance(value, dict):
        return "".join(
            _text(item) for key, item in value.items() if key in ("text", "content", "thinking")
        ) + ("" if "input" not in value else orjson.dumps(value["input"]).decode())
    return ""
