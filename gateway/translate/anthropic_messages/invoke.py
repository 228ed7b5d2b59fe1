"""Messages -> the native Claude body of Bedrock InvokeModel, and its answer back.

Claude on Bedrock takes the Messages body itself (as envoyproxy/ai-gateway's
`anthropic_awsanthropic.go` sends it), so every block Claude Code relies on (text, image,
document, tool_use, tool_result, thinking and redacted_thinking with their signatures,
`cache_control` with `ttl`) reaches the model exactly as the client sent it. What changes
is only the top level, and each field is decided in `TOP_LEVEL` (a table with a test
per row), because Bedrock refuses any key it does not know ("extraneous key"):

* `model` and `stream` leave the body: the model is in the URL, streaming is the
  operation (InvokeModelWithResponseStream);
* `anthropic_version` becomes Bedrock's `bedrock-2023-05-31`, and the allowed betas
  travel as `anthropic_beta` (`gateway.translate.anthropic_messages.betas`);
* `metadata.user_id` becomes the usage record's `end_user` and is not forwarded: Bedrock's
  Claude body has no `metadata`, and Claude Code's value (a JSON text) does not fit the
  pattern of Bedrock's `requestMetadata` either;
* a field Bedrock cannot honour is a 400 naming it, or, with `drop_unsupported_params`,
  dropped and listed in `x-gateway-dropped-params`;
* a caller's guardrail fields (`amazon-bedrock-guardrailConfig`, `guardrailIdentifier`,
  ...) are always dropped and listed: the operator's guardrail is sent as InvokeModel
  request parameters (`gateway.translate.shared.guardrails`), and no request may add,
  remove or weaken one;
* a `system`-role message inside `messages` (Claude Code sends one with the
  `mid-conversation-system-2026-04-07` beta, which Bedrock does not know) becomes user
  text at the same place in the conversation unless that beta is forwarded
  (`fold_system_messages`): the instructions still reach the model where they were.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import orjson

from gateway.errors import InvalidRequestError, UnsupportedParameterError
from gateway.translate.anthropic_messages.betas import split_betas
from gateway.translate.shared.converse_usage import cache_write_1h_tokens
from gateway.translate.shared.guardrails import (
    CALLER_GUARDRAIL_FIELDS,
    GUARDRAIL_ACTION,
)

__all__ = [
    "BEDROCK_ANTHROPIC_VERSION",
    "GUARDRAIL_ACTION",
    "MID_CONVERSATION_SYSTEM_BETA",
    "TOP_LEVEL",
    "Action",
    "InvokeCall",
    "MessagesUsage",
    "fold_system_messages",
    "invoke_response",
    "is_claude",
    "messages_to_invoke_body",
]

BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
MID_CONVERSATION_SYSTEM_BETA = "mid-conversation-system-2026-04-07"
# Bedrock's guardrail trace, added to Claude's message with `trace` enabled: for the
# operator's logs, not part of Anthropic's message.
GUARDRAIL_TRACE = "amazon-bedrock-trace"


class Action(Enum):
    FORWARD = "forward"  # into the body as sent
    OMIT = "omit"  # said elsewhere (URL, operation, usage record); never forwarded
    DROP = "drop"  # a hint Bedrock has no use for: left out, listed in the response header
    REFUSE = "refuse"  # a feature Bedrock lacks: 400, unless drop_unsupported_params


TOP_LEVEL: dict[str, Action] = {
    "messages": Action.FORWARD,
    "max_tokens": Action.FORWARD,
    "system": Action.FORWARD,
    "tools": Action.FORWARD,
    "tool_choice": Action.FORWARD,
    "thinking": Action.FORWARD,  # enabled + budget_tokens, or adaptive (Claude 4.6+)
    "temperature": Action.FORWARD,
    "top_p": Action.FORWARD,
    "top_k": Action.FORWARD,
    "stop_sequences": Action.FORWARD,
    "output_config": Action.FORWARD,  # effort, format (structured outputs)
    "context_management": Action.FORWARD,  # with the context-management beta
    "model": Action.OMIT,  # the modelId in the URL
    "stream": Action.OMIT,  # the operation
    "metadata": Action.OMIT,  # user_id -> the record's end_user
    "anthropic_version": Action.OMIT,  # replaced by Bedrock's version
    "anthropic_beta": Action.OMIT,  # merged with the anthropic-beta header, then filtered
    # Anthropic's own capacity tiers; Bedrock's tiers are chosen per model by the operator.
    "service_tier": Action.DROP,
    # Anthropic-hosted features Bedrock does not run.
    "container": Action.REFUSE,
    "mcp_servers": Action.REFUSE,
    "inference_geo": Action.REFUSE,
    # A caller's guardrail fields: the operator's guardrail alone applies.
    **dict.fromkeys(CALLER_GUARDRAIL_FIELDS, Action.DROP),
}


@dataclass(frozen=True, slots=True)
class InvokeCall:
    """One InvokeModel call: the body, and what the response headers say about it."""

    body: bytes
    betas: list[str]
    dropped_betas: list[str]
    dropped_params: list[str] = field(default_factory=list)


@dataclass(slots=True)
class MessagesUsage:
    """Token counts as Bedrock reported them for one Messages answer."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0  # the 1-hour share of cache_write_tokens

    @classmethod
    def from_converse(cls, usage: Mapping[str, Any]) -> MessagesUsage:
        """A Converse `usage` (an answer's, or a stream's metadata)."""
        return cls(
            input_tokens=int(usage.get("inputTokens") or 0),
            output_tokens=int(usage.get("outputTokens") or 0),
            cache_read_tokens=int(usage.get("cacheReadInputTokens") or 0),
            cache_write_tokens=int(usage.get("cacheWriteInputTokens") or 0),
            cache_write_1h_tokens=cache_write_1h_tokens(usage),
        )

    # Bedrock's verdict arrives with the counts: a guardrail intervened in this answer.
    guardrail_intervened: bool = False

    def take_anthropic(self, usage: Mapping[str, Any]) -> None:
        """An Anthropic `usage` object (the answer's, or a stream's message_start)."""
        self.input_tokens = int(usage.get("input_tokens") or 0)
        self.output_tokens = int(usage.get("output_tokens") or 0)
        self.cache_read_tokens = int(usage.get("cache_read_input_tokens") or 0)
        self.cache_write_tokens = int(usage.get("cache_creation_input_tokens") or 0)
        # `cache_creation` splits the writes by lifetime (1-hour ones cost more).
        creation = usage.get("cache_creation")
        if isinstance(creation, Mapping):
            self.cache_write_1h_tokens = int(creation.get("ephemeral_1h_input_tokens") or 0)

    def take_invocation_metrics(self, metrics: Mapping[str, Any]) -> None:
        """`amazon-bedrock-invocationMetrics`: what Bedrock bills, so it wins."""
        self.input_tokens = int(metrics.get("inputTokenCount") or 0)
        self.output_tokens = int(metrics.get("outputTokenCount") or 0)
        if "cacheReadInputTokenCount" in metrics:
            self.cache_read_tokens = int(metrics.get("cacheReadInputTokenCount") or 0)
        if "cacheWriteInputTokenCount" in metrics:
            self.cache_write_tokens = int(metrics.get("cacheWriteInputTokenCount") or 0)


def is_claude(bedrock_id: str) -> bool:
    """Claude takes its native body on InvokeModel; every other model goes through Converse."""
    return "anthropic.claude" in bedrock_id


def messages_to_invoke_body(
    body: Mapping[str, Any],
    *,
    header_betas: list[str],
    allowed_betas: Collection[str],
    drop_unsupported: bool,
) -> InvokeCall:
    """The InvokeModel body for a validated Messages `body` (see the module docstring)."""
    requested = list(header_betas)
    body_betas = body.get("anthropic_beta")
    if body_betas is not None:
        if not isinstance(body_betas, list) or not all(isinstance(b, str) for b in body_betas):
            raise InvalidRequestError(
                "anthropic_beta must be a list of strings.", param="anthropic_beta"
            )
        requested.extend(b for b in body_betas if b not in requested)
    betas, dropped_betas = split_betas(requested, allowed_betas)
    out: dict[str, Any] = {"anthropic_version": BEDROCK_ANTHROPIC_VERSION}
    if betas:
        out["anthropic_beta"] = betas
    dropped: list[str] = []
    for name, value in body.items():
        action = TOP_LEVEL.get(name, Action.REFUSE)
        if name == "messages" and MID_CONVERSATION_SYSTEM_BETA not in betas:
            out[name] = fold_system_messages(value)
        elif action is Action.FORWARD:
            out[name] = value
        elif action is Action.DROP:
            dropped.append(name)
        elif action is Action.REFUSE:
            if not drop_unsupported:
                raise UnsupportedParameterError(
                    f"{name}: Amazon Bedrock does not support this parameter for Claude.",
                    param=name,
                )
            dropped.append(name)
    return InvokeCall(orjson.dumps(out), betas, dropped_betas, dropped)


def fold_system_messages(messages: list[Any]) -> list[Any]:
    """`system`-role messages as user text in place; consecutive turns of a role joined.

    The same list (no copy) when there is no system message: the common case.
    """
    if not any(isinstance(m, dict) and m.get("role") == "system" for m in messages):
        return messages
    folded: list[dict[str, Any]] = []
    for message in messages:
        role = "user" if message.get("role") == "system" else message.get("role")
        if folded and folded[-1]["role"] == role:
            joined = [*_blocks(folded[-1]["content"]), *_blocks(message.get("content"))]
            folded[-1] = {**folded[-1], "content": joined}
        else:
            folded.append({**message, "role": role})
    return folded


def _blocks(content: Any) -> list[Any]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def invoke_response(body: bytes, *, model: str) -> tuple[dict[str, Any], MessagesUsage]:
    """Claude's InvokeModel answer as the client's: the same message, `model` as it asked."""
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError:
        message = None
    if not isinstance(message, dict):
        raise ValueError("Bedrock answered InvokeModel with a body that is not a JSON object")
    message["model"] = model
    # With a guardrail, Bedrock adds its verdict to Claude's message; an intervention is
    # Anthropic's `refusal` (the contract's mapping), and the key itself is Bedrock's.
    usage = MessagesUsage()
    message.pop(GUARDRAIL_TRACE, None)
    if message.pop(GUARDRAIL_ACTION, None) == "INTERVENED":
        message["stop_reason"] = "refusal"
        usage.guardrail_intervened = True
    raw = message.get("usage")
    if isinstance(raw, dict):
        usage.take_anthropic(raw)
    return message, usage
