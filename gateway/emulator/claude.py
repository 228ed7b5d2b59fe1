"""Claude on InvokeModel / InvokeModelWithResponseStream / CountTokens, as Bedrock serves it.

Bedrock's Claude takes the Anthropic Messages body (`anthropic_version:
bedrock-2023-05-31`) and answers with an Anthropic message; its response stream is AWS
event-stream `chunk` frames whose `bytes` (base64 in the frame's JSON) each hold one
Anthropic event, with `amazon-bedrock-invocationMetrics` added to `message_stop`. Like
Bedrock, the emulator refuses keys the Claude body does not have ("extraneous key"), a
wrong `anthropic_version` and a beta it does not know ("invalid beta flag").

The answer itself comes from the same scripts as Converse (SCRIPTING.md): the body is read
as the Converse conversation it amounts to, `parse_script` decides, and this module only
renders the decision in Claude's shapes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from gateway.emulator.answers import (
    StreamPlan,
    guardrail_trace,
    input_fragments,
    scripted_failures,
    text_pieces,
)
from gateway.emulator.errors import ServiceError
from gateway.emulator.eventstream import event_frame
from gateway.emulator.plan import Script
from gateway.emulator.script import word_pieces

__all__ = [
    "BEDROCK_BETAS",
    "claude_message",
    "claude_stream_plan",
    "converse_view",
    "is_claude",
    "read_claude_body",
]

BEDROCK_VERSION = "bedrock-2023-05-31"
BEDROCK_BETAS = frozenset(
    {
        "computer-use-2024-10-22", "computer-use-2025-01-24", "token-efficient-tools-2025-02-19",
        "interleaved-thinking-2025-05-14", "output-128k-2025-02-19",
        "dev-full-thinking-2025-05-14", "context-1m-2025-08-07",
        "context-management-2025-06-27", "effort-2025-11-24", "tool-search-tool-2025-10-19",
        "tool-examples-2025-10-29",
    }
)  # fmt: skip
_BODY_KEYS = frozenset(
    {
        "anthropic_version", "anthropic_beta", "messages", "system", "max_tokens", "tools",
        "tool_choice", "thinking", "temperature", "top_p", "top_k", "stop_sequences",
        "output_config", "context_management", "amazon-bedrock-guardrailConfig",
    }
)  # fmt: skip
# Converse stop reasons (what scripts say) -> Claude's.
_STOP_REASONS = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "guardrail_intervened": "refusal",
    "content_filtered": "refusal",
    "model_context_window_exceeded": "model_context_window_exceeded",
}
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
GUARDRAIL_ACTION = "amazon-bedrock-guardrailAction"
GUARDRAIL_TRACE = "amazon-bedrock-trace"


def is_claude(model_id: str) -> bool:
    return "anthropic.claude" in model_id


def _invalid(message: str) -> ServiceError:
    return ServiceError("ValidationException", message)


def read_claude_body(body: bytes) -> dict[str, Any]:
    """The Claude body, checked the way Bedrock checks it."""
    try:
        request = json.loads(body)
    except ValueError:
        request = None
    if not isinstance(request, dict):
        raise _invalid("Malformed input request, please reformat your input and try again.")
    extra = sorted(set(request) - _BODY_KEYS)
    if extra:
        raise _invalid(f"Malformed input request: #: extraneous key [{extra[0]}] is not permitted")
    if request.get("anthropic_version") != BEDROCK_VERSION:
        raise _invalid("Malformed input request: anthropic_version: invalid value")
    for beta in request.get("anthropic_beta") or ():
        if beta not in BEDROCK_BETAS:
            raise _invalid("invalid beta flag")
    if not isinstance(request.get("max_tokens"), int):
        raise _invalid("Malformed input request: #: required key [max_tokens] not found")
    return request


def _text_of(content: Any) -> list[dict[str, Any]]:
    """Anthropic content as the Converse blocks the scripts read (text and tool results)."""
    if isinstance(content, str):
        return [{"text": content}]
    blocks: list[dict[str, Any]] = []
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            blocks.append({"text": block["text"]})
        elif kind == "tool_result":
            blocks.append({"toolResult": {"content": _text_of(block.get("content") or [])}})
        elif kind is not None:
            blocks.append({"other": kind})  # images, documents, thinking: no text to echo
    return blocks


def converse_view(request: dict[str, Any]) -> dict[str, Any]:
    """The Converse request a Claude body amounts to, for `parse_script`.

    Anthropic's API joins consecutive turns of one role; Converse refuses them, so they are
    joined here too.
    """
    messages: list[dict[str, Any]] = []
    for message in request.get("messages") or ():
        if not isinstance(message, dict):
            raise _invalid("messages: each message must be an object")
        content = _text_of(message.get("content"))
        if messages and messages[-1]["role"] == message.get("role"):
            messages[-1]["content"].extend(content)
        else:
            messages.append({"role": message.get("role"), "content": content})
    view: dict[str, Any] = {"messages": messages}
    system = request.get("system")
    if system is not None:
        view["system"] = _text_of(system)
    view["inferenceConfig"] = {"maxTokens": request["max_tokens"]}
    return view


def _tool_id(scripted: str) -> str:
    # Claude's ids on Bedrock look like `toolu_bdrk_...`; scripts make `tooluse_...`.
    return "toolu_bdrk_" + scripted.removeprefix("tooluse_")


def _message_id(model_id: str, script: Script) -> str:
    digest = hashlib.sha256(f"{model_id}\n{script.reply}".encode()).hexdigest()
    return "msg_bdrk_" + digest[:24]


def _model_name(model_id: str) -> str:
    return model_id.rpartition("anthropic.")[2].removesuffix(":0").removesuffix("-v1")


def _usage(script: Script, *, output_tokens: int) -> dict[str, int]:
    usage = script.usage
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_write_input_tokens or 0,
        "cache_read_input_tokens": usage.cache_read_input_tokens or 0,
        "output_tokens": output_tokens,
    }


def _has_text(script: Script) -> bool:
    return bool(script.reply) or not script.tool_calls


def claude_message(script: Script, model_id: str) -> dict[str, Any]:
    """The InvokeModel answer: one Anthropic message."""
    content: list[dict[str, Any]] = []
    for reasoning in script.reasoning:
        if reasoning.redacted is not None:
            content.append({"type": "redacted_thinking", "data": reasoning.redacted})
        else:
            content.append(
                {
                    "type": "thinking",
                    "thinking": reasoning.text or "",
                    "signature": reasoning.signature or "",
                }
            )
    if _has_text(script):
        content.append({"type": "text", "text": script.reply})
    for call in script.tool_calls:
        content.append(
            {"type": "tool_use", "id": _tool_id(call.id), "name": call.name, "input": call.input}
        )
    # A guardrail's intervention leaves Claude's own stop reason (end_turn) in place;
    # Bedrock says it in `amazon-bedrock-guardrailAction` instead.
    intervened = script.guardrail_action == "INTERVENED"
    message: dict[str, Any] = {
        "id": _message_id(model_id, script),
        "type": "message",
        "role": "assistant",
        "model": _model_name(model_id),
        "content": content,
        "stop_reason": "end_turn" if intervened else _STOP_REASONS[script.stop_reason],
        "stop_sequence": None,
        "usage": _usage(script, output_tokens=script.usage.output_tokens),
    }
    message.update(_guardrail_fields(script))
    return message


def _guardrail_fields(script: Script) -> dict[str, Any]:
    """What Bedrock adds to Claude's answer (or its last chunk) under a guardrail."""
    fields: dict[str, Any] = {}
    if script.guardrail_action is not None:
        fields[GUARDRAIL_ACTION] = script.guardrail_action
        if script.guardrail_traced:
            fields[GUARDRAIL_TRACE] = guardrail_trace(script)
    return fields


def claude_events(script: Script, model_id: str, latency_ms: int) -> list[dict[str, Any]]:
    """Every Anthropic event of the streamed answer, in order."""
    message = claude_message(script, model_id)
    start = {**message, "content": [], "stop_reason": None}
    for name in (GUARDRAIL_ACTION, GUARDRAIL_TRACE):
        start.pop(name, None)
    start["usage"] = _usage(script, output_tokens=1)
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]

    def block(index: int, first: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
        events.append({"type": "content_block_start", "index": index, "content_block": first})
        events.extend(
            {"type": "content_block_delta", "index": index, "delta": delta} for delta in deltas
        )
        events.append({"type": "content_block_stop", "index": index})

    for index, item in enumerate(message["content"]):
        kind = item["type"]
        if kind == "thinking":
            deltas = [
                {"type": "thinking_delta", "thinking": t} for t in word_pieces(item["thinking"])
            ]
            if item["signature"]:
                deltas.append({"type": "signature_delta", "signature": item["signature"]})
            block(index, {"type": "thinking", "thinking": "", "signature": ""}, deltas)
        elif kind == "redacted_thinking":
            block(index, item, [])
        elif kind == "text":
            pieces = text_pieces(item["text"], script.chunks)
            block(
                index,
                {"type": "text", "text": ""},
                [{"type": "text_delta", "text": p} for p in pieces],
            )
        else:
            encoded = _JSON.encode(item["input"])
            deltas = [
                {"type": "input_json_delta", "partial_json": p} for p in input_fragments(encoded)
            ]
            block(index, {**item, "input": {}}, deltas)
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": script.usage.output_tokens},
        }
    )
    metrics: dict[str, int] = {
        "inputTokenCount": script.usage.input_tokens,
        "outputTokenCount": script.usage.output_tokens,
        "invocationLatency": latency_ms,
        "firstByteLatency": round(script.first_token_delay_ms),
    }
    if script.usage.cache_read_input_tokens is not None:
        metrics["cacheReadInputTokenCount"] = script.usage.cache_read_input_tokens
    if script.usage.cache_write_input_tokens is not None:
        metrics["cacheWriteInputTokenCount"] = script.usage.cache_write_input_tokens
    stop: dict[str, Any] = {"type": "message_stop"}
    if not script.omit_metadata:
        stop["amazon-bedrock-invocationMetrics"] = metrics
    stop.update(_guardrail_fields(script))  # the verdict rides on the last chunk
    events.append(stop)
    return events


def chunk_frame(event: dict[str, Any]) -> bytes:
    """One `chunk` frame: the event's JSON, base64 in `bytes`, as Bedrock frames it."""
    encoded = base64.b64encode(_JSON.encode(event).encode()).decode("ascii")
    return event_frame("chunk", _JSON.encode({"bytes": encoded, "p": "abcdefgh"}).encode())


def claude_stream_plan(script: Script, model_id: str, latency_ms: int) -> StreamPlan:
    """Frames and pacing of the streamed answer, in-stream error and disconnect applied."""
    events = claude_events(script, model_id, latency_ms)
    frames = [chunk_frame(event) for event in events]
    delay = script.delay_ms / 1000
    pauses = [0.0] + [delay] * (len(frames) - 1)
    if len(pauses) > 1:
        pauses[1] += script.first_token_delay_ms / 1000  # the first content_block_start
    return scripted_failures(script, frames, pauses)
