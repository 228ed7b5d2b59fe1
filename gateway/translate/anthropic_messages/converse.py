"""Messages <-> Converse, for the chat models that are not Claude (Nova, Llama, Mistral, ...).

Converse is Bedrock's one request shape for every chat model (as envoyproxy/ai-gateway's
`anthropic_awsbedrock.go` uses it), so the Messages blocks are mapped one by one, each in
`_block`: text, image and PDF (base64), tool_use / tool_result, thinking /
redacted_thinking, and `cache_control` as a `cachePoint` after the block it marks. What
Converse cannot carry is a 400 naming the field, or with `drop_unsupported_params`
dropped and listed, never silently lost.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import InvalidRequestError, UnsupportedParameterError
from gateway.translate.anthropic_messages.invoke import MessagesUsage, fold_system_messages
from gateway.translate.shared.guardrails import CALLER_GUARDRAIL_FIELDS, GUARDRAIL_INTERVENED
from gateway.translate.shared.images import mime_image_format

__all__ = ["STOP_REASONS", "ConverseCall", "converse_response", "messages_to_converse"]

_CACHE_POINT = {"cachePoint": {"type": "default"}}
# Converse stop reasons -> Anthropic's.
STOP_REASONS: dict[str, str] = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "guardrail_intervened": "refusal",
    "content_filtered": "refusal",
    "model_context_window_exceeded": "model_context_window_exceeded",
}
# Top-level fields handled outside `_PARAMS` and the block mapping.
_OMIT = frozenset({"model", "stream", "metadata", "anthropic_version", "anthropic_beta"})
# Dropped and listed whatever `drop_unsupported` says: Anthropic's own tiers, and a
# caller's guardrail fields (the operator's guardrail alone applies).
_DROP = frozenset({"service_tier", *CALLER_GUARDRAIL_FIELDS})
_PARAMS = {  # Messages parameter -> Converse inferenceConfig key
    "max_tokens": "maxTokens",
    "temperature": "temperature",
    "top_p": "topP",
    "stop_sequences": "stopSequences",
}
_HANDLED = frozenset({"messages", "system", "tools", "tool_choice", "thinking"})


@dataclass(slots=True)
class ConverseCall:
    request: dict[str, Any]
    dropped_params: list[str] = field(default_factory=list)


def _bad(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def _decode(data: Any, param: str) -> bytes:
    if not isinstance(data, str):
        raise _bad("source.data must be a base64 string.", param)
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error:
        raise _bad("source.data is not valid base64.", param) from None


def _image(block: Mapping[str, Any], param: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict) or source.get("type") != "base64":
        raise UnsupportedParameterError(
            "Only base64 image sources can be sent to this model.", param=f"{param}.source"
        )
    fmt = mime_image_format(str(source.get("media_type") or ""))
    if fmt is None:
        raise _bad("media_type must be image/png, image/jpeg, image/gif or image/webp.", param)
    return {"image": {"format": fmt, "source": {"bytes": _decode(source.get("data"), param)}}}


def _document(block: Mapping[str, Any], param: str, index: int) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict) or source.get("type") != "base64":
        raise UnsupportedParameterError(
            "Only base64 PDF documents can be sent to this model.", param=f"{param}.source"
        )
    if source.get("media_type") != "application/pdf":
        raise _bad("media_type must be application/pdf.", f"{param}.source.media_type")
    name = str(block.get("title") or f"document-{index}")
    return {
        "document": {
            "format": "pdf",
            "name": name,
            "source": {"bytes": _decode(source.get("data"), param)},
        }
    }


def _tool_result_content(content: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    if content is None:
        return [{"text": ""}]
    out: list[dict[str, Any]] = []
    for index, item in enumerate(content if isinstance(content, list) else ()):
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "text":
            out.append({"text": str(item.get("text", ""))})
        elif kind == "image":
            out.append(_image(item, f"{param}.{index}"))
        else:
            raise _bad(f"tool_result content of type {kind!r} is not supported.", param)
    return out or [{"text": ""}]


def _block(block: Any, param: str, index: int) -> dict[str, Any]:
    if not isinstance(block, dict):
        raise _bad("Each content block must be an object.", param)
    match block.get("type"):
        case "text":
            return {"text": str(block.get("text", ""))}
        case "image":
            return _image(block, param)
        case "document":
            return _document(block, param, index)
        case "tool_use":
            return {
                "toolUse": {
                    "toolUseId": str(block.get("id")),
                    "name": str(block.get("name")),
                    "input": block.get("input") or {},
                }
            }
        case "tool_result":
            result: dict[str, Any] = {
                "toolUseId": str(block.get("tool_use_id")),
                "content": _tool_result_content(block.get("content"), param),
            }
            if block.get("is_error"):
                result["status"] = "error"
            return {"toolResult": result}
        case "thinking":
            text: dict[str, Any] = {"text": str(block.get("thinking", ""))}
            if block.get("signature"):
                text["signature"] = block["signature"]
            return {"reasoningContent": {"reasoningText": text}}
        case "redacted_thinking":
            data = _decode(block.get("data"), param)
            return {"reasoningContent": {"redactedContent": data}}
        case kind:
            raise _bad(f"Content blocks of type {kind!r} cannot be sent to this model.", param)


def _content(content: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    out: list[dict[str, Any]] = []
    for index, block in enumerate(content):
        out.append(_block(block, f"{param}.{index}", index))
        if isinstance(block, dict) and block.get("cache_control"):
            out.append(dict(_CACHE_POINT))
    return out


def _tools(tools: Any, choice: Any) -> dict[str, Any] | None:
    if not tools:
        return None
    specs: list[dict[str, Any]] = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") not in (None, "custom"):
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise UnsupportedParameterError(
                f"Server tools ({kind!r}) run only on Anthropic's own API.", param=f"tools.{index}"
            )
        spec: dict[str, Any] = {
            "name": str(tool.get("name")),
            "inputSchema": {"json": tool.get("input_schema") or {"type": "object"}},
        }
        if tool.get("description"):
            spec["description"] = tool["description"]
        specs.append({"toolSpec": spec})
        if tool.get("cache_control"):
            specs.append(dict(_CACHE_POINT))
    config: dict[str, Any] = {"tools": specs}
    if isinstance(choice, dict):
        match choice.get("type"):
            case "any":
                config["toolChoice"] = {"any": {}}
            case "tool":
                config["toolChoice"] = {"tool": {"name": str(choice.get("name"))}}
            case "none":
                return None  # Converse has no "none": send no tools at all
            case _:
                pass
    return config


def messages_to_converse(body: Mapping[str, Any], *, drop_unsupported: bool) -> ConverseCall:
    """The Converse request (without modelId) for a validated Messages `body`."""
    call = ConverseCall({})
    request = call.request
    request["messages"] = [
        {"role": m["role"], "content": _content(m["content"], f"messages.{i}.content")}
        for i, m in enumerate(fold_system_messages(body["messages"]))
    ]
    system = body.get("system")
    if system:
        request["system"] = _content(system, "system")
    inference = {_PARAMS[k]: body[k] for k in _PARAMS if body.get(k) is not None}
    request["inferenceConfig"] = inference
    tool_config = _tools(body.get("tools"), body.get("tool_choice"))
    if tool_config is not None:
        request["toolConfig"] = tool_config
    for name in body:
        if name in _OMIT or name in _PARAMS or name in _HANDLED:
            continue
        if name in _DROP:
            call.dropped_params.append(name)
            continue
        _refuse(call, name, drop_unsupported)
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") not in (None, "disabled"):
        _refuse(call, "thinking", drop_unsupported)
    return call


def _refuse(call: ConverseCall, name: str, drop_unsupported: bool) -> None:
    if not drop_unsupported:
        raise UnsupportedParameterError(
            f"{name}: this parameter is supported for Claude models only.", param=name
        )
    call.dropped_params.append(name)


def converse_response(
    response: Mapping[str, Any], *, message_id: str, model: str
) -> tuple[dict[str, Any], MessagesUsage]:
    """A Converse answer as an Anthropic message, and its usage."""
    content: list[dict[str, Any]] = []
    message = response.get("output", {}).get("message", {})
    for block in message.get("content", ()):
        if "text" in block:
            content.append({"type": "text", "text": block["text"]})
        elif "toolUse" in block:
            use = block["toolUse"]
            content.append(
                {
                    "type": "tool_use",
                    "id": use["toolUseId"],
                    "name": use["name"],
                    "input": use.get("input") or {},
                }
            )
        elif "reasoningContent" in block:
            content.append(_reasoning(block["reasoningContent"]))
    raw = response.get("usage") or {}
    usage = MessagesUsage.from_converse(raw)
    stop = str(response.get("stopReason") or "end_turn")
    usage.guardrail_intervened = stop == GUARDRAIL_INTERVENED
    answer = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS.get(stop, "end_turn"),
        "stop_sequence": None,
        "usage": anthropic_usage(usage),
    }
    return answer, usage


def anthropic_usage(usage: MessagesUsage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "output_tokens": usage.output_tokens,
    }


def _reasoning(reasoning: Mapping[str, Any]) -> dict[str, Any]:
    if "redactedContent" in reasoning:
        data = reasoning["redactedContent"]
        encoded = base64.b64encode(data).decode() if isinstance(data, bytes) else str(data)
        return {"type": "redacted_thinking", "data": encoded}
    text = reasoning.get("reasoningText") or {}
    return {
        "type": "thinking",
        "thinking": text.get("text", ""),
        "signature": text.get("signature", ""),
    }
