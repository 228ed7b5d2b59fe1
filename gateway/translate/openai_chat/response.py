"""A Converse response as an OpenAI `chat.completion` object.

Input is the dict aiobotocore returns from `converse()`: botocore has already dropped the
fields its service model does not name (Bedrock's `p` padding, the legacy
`cache*InputTokenCount` twins, `serverToolUsage`) and decoded blobs to `bytes`.

Reasoning has no field in OpenAI's schema. We add three to the assistant message, named
after the `reasoning_content` convention that DeepSeek, vLLM and LiteLLM clients already
read, and only when the model produced them:

* `reasoning_content` (str) -- the reasoning text, all reasoning blocks joined.
* `reasoning_signature` (str) -- the signature Bedrock attaches to the reasoning text.
  Anthropic models reject a follow-up turn whose thinking lost its signature, so a client
  that continues a tool-use conversation sends this field back on the assistant message,
  next to `reasoning_content`, unchanged. Bedrock's models sign one reasoning block per
  answer; were there several, the first signature is the one kept, here and in the stream.
* `reasoning_redacted` (list[str]) -- one entry per redacted reasoning block, standard
  base64 (as on Bedrock's wire). Opaque: the client returns the list unchanged too.

The stream translator emits the same three names as deltas, shaped so that the accumulation
rule of the OpenAI SDKs (strings concatenate, lists of strings extend) rebuilds exactly this
message.

Structured output. When the request's `response_format` was sent as a tool
(`gateway.translate.shared.structured`), the caller passes that tool's Bedrock name as
`structured_output_tool`. A call to it is the answer: its input becomes the message
`content`, compact JSON and nothing else (any text the model wrote around the call is left
out, so that `json.loads` and the SDK's `parse()` read exactly the object), it is not
listed in `tool_calls`, and `finish_reason` is "stop" unless the model also called one of
the client's tools ("tool_calls", the content kept alongside) or ran out of tokens
("length"). Should the model call the tool twice, the first call is the answer. Without a
call to it (a model that was only asked, not forced, to use it), the text is the content.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from gateway.translate.shared.finish_reasons import finish_reason, served_tier, stop_reason_error

__all__ = [
    "converse_to_openai_response",
    "encode_redacted",
    "openai_usage",
    "tool_arguments",
]


def openai_usage(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    """OpenAI `usage` from a Converse `TokenUsage`.

    Bedrock's `inputTokens` counts only the tokens that were neither read from nor written
    to the prompt cache (the recorded cache captures: input 2, cache read 1322, total 1329),
    whereas OpenAI's `prompt_tokens` is the whole prompt with `cached_tokens` a part of it.
    So the prompt is the sum of all three, and `total_tokens` agrees with Bedrock's own
    `totalTokens`. `cache_write_tokens` (a field of the current OpenAI schema) appears only
    when Bedrock reported a number; `completion_tokens_details` never does, because Bedrock
    does not say how many output tokens were reasoning.

    Bedrock always reports usage on a finished answer; if it is missing we count zero
    rather than fail an answer the client is waiting for.
    """
    usage = usage or {}
    cache_read = int(usage.get("cacheReadInputTokens") or 0)
    cache_write = usage.get("cacheWriteInputTokens")
    prompt = int(usage.get("inputTokens") or 0) + cache_read + int(cache_write or 0)
    completion = int(usage.get("outputTokens") or 0)
    details: dict[str, Any] = {"cached_tokens": cache_read}
    if cache_write is not None:
        details["cache_write_tokens"] = int(cache_write)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": details,
    }


def tool_arguments(tool_input: Any) -> str:
    """A Converse `toolUse.input` document as OpenAI's `function.arguments` string.

    Compact and without ASCII escaping: the same bytes our SSE encoder would produce, and
    what OpenAI itself sends. A tool called without input still gets `"{}"`, since clients
    pass `arguments` straight to `json.loads`.
    """
    if tool_input is None:
        return "{}"
    return json.dumps(tool_input, separators=(",", ":"), ensure_ascii=False)


def encode_redacted(data: bytes | str) -> str:
    """A redacted reasoning blob as text for JSON.

    botocore decodes the `redactedContent` blob to bytes; we give the client the base64 that
    was on Bedrock's wire, so sending it back round-trips byte for byte. A `str` is taken to
    be that base64 already (a fake client that skipped botocore's parser).
    """
    if isinstance(data, str):
        return data
    return base64.b64encode(data).decode("ascii")


def _finish_reason(
    stop_reason: str | None, tool_calls: list[dict[str, Any]], structured: str | None
) -> str:
    reason = finish_reason(stop_reason)
    if reason == "tool_calls" and structured is not None and not tool_calls:
        # The only call was the answer itself: for the client the message is complete.
        return "stop"
    return reason


def converse_to_openai_response(
    resp: Mapping[str, Any],
    *,
    completion_id: str,
    model: str,
    created: int,
    tool_names: Mapping[str, str] | None = None,
    structured_output_tool: str | None = None,
) -> dict[str, Any]:
    """The `chat.completion` object for one Converse response.

    `model` is the name the client asked for, `tool_names` maps the names sent to Bedrock
    back to the client's own (the request translator may have had to rename them), and
    `structured_output_tool` names the tool whose call is the JSON answer (see above).
    An answer that stopped malformed (`malformed_tool_use`, `malformed_model_output`) raises
    the `UpstreamError` to send instead. `service_tier` is set when Bedrock names its tier.
    """
    error = stop_reason_error(resp.get("stopReason"))
    if error is not None:
        raise error
    # Bedrock can answer HTTP 200 without an output message (envoyproxy/ai-gateway guards
    # the same case); that is an empty answer, not a reason to fail with a 500.
    output = resp.get("output") or {}
    message_in = output.get("message") or {}
    blocks = message_in.get("content") or []

    texts: list[str] = []
    reasoning: list[str] = []
    signature: str | None = None
    redacted: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    structured: str | None = None
    names = tool_names or {}

    for block in blocks:
        match block:
            case {"text": str(text)}:
                texts.append(text)
            case {"toolUse": {"name": str(name)} as tool_use} if name == structured_output_tool:
                if structured is None:
                    structured = tool_arguments(tool_use.get("input"))
            case {"toolUse": {"toolUseId": str(call_id), "name": str(name)} as tool_use}:
                tool_calls.append(
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": names.get(name, name),
                            "arguments": tool_arguments(tool_use.get("input")),
                        },
                    }
                )
            case {"reasoningContent": {"reasoningText": dict(reasoning_text)}}:
                reasoning.append(reasoning_text.get("text") or "")
                signature = signature or reasoning_text.get("signature")
            case {"reasoningContent": {"redactedContent": bytes() | str() as blob}}:
                redacted.append(encode_redacted(blob))
            case {"citationsContent": {"content": list(parts)}}:
                # Answers grounded in documents arrive as citation blocks whose generated
                # text is in `content`; OpenAI has no matching annotation, the text stays.
                texts.extend(part["text"] for part in parts if isinstance(part.get("text"), str))
            case _:
                # Images, documents and future block types have no place in an OpenAI
                # assistant message.
                pass

    if structured is not None:
        content: str | None = structured
    elif texts:
        content = "".join(texts)
    elif tool_calls:
        content = None
    else:
        content = ""

    message: dict[str, Any] = {
        "role": "assistant",
        "content": content,
        "refusal": None,
        "annotations": [],
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if signature is not None:
        message["reasoning_signature"] = signature
    if redacted:
        message["reasoning_redacted"] = redacted

    result: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _finish_reason(resp.get("stopReason"), tool_calls, structured),
            }
        ],
        "usage": openai_usage(resp.get("usage")),
    }
    tier = served_tier(resp)
    if tier is not None:
        # OpenAI's field: the tier that served the request.
        result["service_tier"] = tier
    return result
