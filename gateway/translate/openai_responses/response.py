"""A Converse response as a Responses API `response` object, and the parts both paths share.

`converse_to_response` feeds the Converse blocks through `OutputItems`, the builder the
stream translator uses too, so a streamed and a non-streamed answer end in the same
object. The other fields:

* `status` and `incomplete_details` from Bedrock's `stopReason` through `INCOMPLETE`:
  running out of tokens (or of context window) is `incomplete` with reason
  `max_output_tokens`; a content filter or guardrail is `incomplete` with
  `content_filter`; every other stop reason (including unknown ones, as for chat) is
  `completed`.
* `usage` from Bedrock's `TokenUsage` (`responses_usage`): Bedrock's `inputTokens` leaves
  out cache reads and writes, OpenAI's `input_tokens` is the whole prompt, so it is the
  sum, with the reads as `cached_tokens` and the writes as `cache_write_tokens`. Bedrock
  does not say how many output tokens were reasoning: `reasoning_tokens` is 0.
* The request's settings echoed back (`ResponseEcho`), as OpenAI does: the SDKs and the
  Agents SDK read `tools`, `tool_choice`, `parallel_tool_calls` and friends from it.

Structured output: a call to `structured_output_tool` is the answer; its input is the
text of a message item and not a `function_call`. Text the model wrote before it (it can,
when thinking is on and the call was asked for, not forced) is left out, as in chat.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from gateway.schemas.openai_responses import ResponsesRequest
from gateway.translate.openai_responses.output import OutputItems
from gateway.translate.shared.finish_reasons import served_tier

__all__ = [
    "INCOMPLETE",
    "ResponseEcho",
    "converse_to_response",
    "envelope",
    "request_echo",
    "responses_usage",
]

# Converse `stopReason` -> `incomplete_details.reason`; absent: the response is complete.
INCOMPLETE: Final[Mapping[str, str]] = {
    "max_tokens": "max_output_tokens",
    "model_context_window_exceeded": "max_output_tokens",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}


@dataclass(frozen=True, slots=True)
class ResponseEcho:
    """The request fields a response object repeats, already in their response form."""

    fields: Mapping[str, Any]
    summary: bool  # the client asked for reasoning summaries


def request_echo(req: ResponsesRequest, *, store: bool) -> ResponseEcho:
    """What `response` objects for `req` repeat of it."""
    text = req.text.format if req.text is not None and req.text.format else {"type": "text"}
    reasoning = req.reasoning
    summary = reasoning.summary or reasoning.generate_summary if reasoning else None
    fields = {
        "background": False,
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "max_tool_calls": req.max_tool_calls,
        "metadata": req.metadata or {},
        "parallel_tool_calls": req.parallel_tool_calls is not False,
        "previous_response_id": req.previous_response_id,
        "prompt_cache_key": req.prompt_cache_key,
        "reasoning": {"effort": reasoning.effort if reasoning else None, "summary": summary},
        "safety_identifier": req.safety_identifier,
        "store": store,
        "temperature": req.temperature if req.temperature is not None else 1.0,
        "text": {
            "format": text,
            "verbosity": (req.text.verbosity if req.text else None) or "medium",
        },
        "tool_choice": req.tool_choice if req.tool_choice is not None else "auto",
        "tools": [tool.model_dump(exclude_none=True) for tool in req.tools or ()],
        "top_logprobs": req.top_logprobs or 0,
        "top_p": req.top_p if req.top_p is not None else 1.0,
        "truncation": "disabled",
        "user": req.user,
    }
    return ResponseEcho(fields=fields, summary=summary not in (None, "none"))


def envelope(
    echo: ResponseEcho,
    *,
    response_id: str,
    model: str,
    created_at: int,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    incomplete_reason: str | None = None,
    error: dict[str, Any] | None = None,
    service_tier: str = "default",
) -> dict[str, Any]:
    """A whole `response` object."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "model": model,
        "output": output,
        **echo.fields,
        "service_tier": service_tier,
        "usage": usage,
    }


def responses_usage(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Responses `usage` object for a Converse `TokenUsage` (see the module docstring)."""
    usage = usage or {}
    cache_read = int(usage.get("cacheReadInputTokens") or 0)
    cache_write = int(usage.get("cacheWriteInputTokens") or 0)
    prompt = int(usage.get("inputTokens") or 0) + cache_read + cache_write
    output = int(usage.get("outputTokens") or 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cache_read, "cache_write_tokens": cache_write},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + output,
    }


def _tool_input(value: Any) -> str:
    if value is None:
        return "{}"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _blob(data: bytes | str) -> str:
    return data if isinstance(data, str) else base64.b64encode(data).decode("ascii")


def converse_to_response(
    resp: Mapping[str, Any],
    echo: ResponseEcho,
    *,
    response_id: str,
    model: str,
    created_at: int,
    tool_names: Mapping[str, str] | None = None,
    namespaced: Mapping[str, tuple[str, str]] | None = None,
    custom: Collection[str] = (),
    structured_output_tool: str | None = None,
    reasoning_key: bytes | None = None,
    expose_reasoning: bool = True,
    encrypted: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The `response` object for one Converse response.

    `reasoning_key` None: no `encrypted_content` at all. `expose_reasoning` False (the
    client did not include it): made, but only put in `encrypted` (item id -> content)."""
    output = OutputItems(
        response_id=response_id,
        tool_names=tool_names,
        namespaced=namespaced,
        custom=custom,
        summary=echo.summary,
        reasoning_key=reasoning_key,
        expose_reasoning=expose_reasoning,
    )
    blocks = ((resp.get("output") or {}).get("message") or {}).get("content") or []
    answered = structured_output_tool is not None and any(
        block.get("toolUse", {}).get("name") == structured_output_tool for block in blocks
    )
    seen_answer = False
    for i, block in enumerate(blocks):
        match block:
            case {"text": str(text)}:
                if not answered:
                    output.text(text)
            case {"toolUse": {"name": str(name)} as tool_use} if name == structured_output_tool:
                if not seen_answer:  # should the model call it twice, the first is the answer
                    output.text(_tool_input(tool_use.get("input")))
                seen_answer = True
            case {"toolUse": {"toolUseId": str(call_id), "name": str(name)} as tool_use}:
                output.call_start(i, call_id, name)
                output.call_arguments(i, _tool_input(tool_use.get("input")))
                output.call_stop(i)
            case {"reasoningContent": {"reasoningText": dict(reasoning)}}:
                output.reasoning_text(reasoning.get("text") or "")
                if isinstance(reasoning.get("signature"), str):
                    output.reasoning_signature(reasoning["signature"])
            case {"reasoningContent": {"redactedContent": bytes() | str() as blob}}:
                output.reasoning_redacted(_blob(blob))
            case {"citationsContent": {"content": list(parts)}}:
                for part in parts:
                    if isinstance(part.get("text"), str):
                        output.text(part["text"])
            case _:
                pass  # images, documents, future block types: nothing to show
    items = output.finish()
    if encrypted is not None:
        encrypted.update(output.encrypted)
    reason = INCOMPLETE.get(resp.get("stopReason") or "")
    return envelope(
        echo,
        response_id=response_id,
        model=model,
        created_at=created_at,
        status="incomplete" if reason else "completed",
        output=items,
        usage=responses_usage(resp.get("usage")),
        incomplete_reason=reason,
        service_tier=served_tier(resp) or "default",
    )
