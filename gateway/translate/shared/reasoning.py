"""Extended thinking: how a request turns it on, what it forbids, and past reasoning.

The reasoning-capable models in the gateway's catalogue are Anthropic's, which take
`{"thinking": {"type": "enabled", "budget_tokens": N}}` in `additionalModelRequestFields`.
A request turns thinking on in one of two ways, never both (400 naming `thinking`):

* `reasoning_effort`, through `EFFORT_LEVELS` to one of the model's configured budgets
  (low/medium/high). "minimal" takes the low budget, since Anthropic's smallest budget is
  1024 tokens; "xhigh" and "max" take the high one; "none" asks for no thinking.
* `thinking` in the request's extra fields (the SDK's `extra_body`), Anthropic's own
  shape: `type` "enabled" with an integer `budget_tokens` of at least 1024, or "disabled".
  Any other key is a 400 naming it.

A model whose options do not list reasoning support refuses either (400 naming the
parameter), or, with `drop_unsupported`, the parameter is dropped and listed.

Adaptive models (`reasoning.mode: adaptive`: Claude Opus 4.7 and later refuse
`budget_tokens` with a 400) decide themselves how much to think. There
`reasoning_effort` becomes `{"thinking": {"type": "adaptive"}}` in
`additionalModelRequestFields` plus Converse `outputConfig.effort` (`ADAPTIVE_EFFORTS`:
"minimal" is "low", the others keep their name; "none" asks for no thinking), and
`thinking` in the extra fields may be `{"type": "adaptive"}` (the model's default effort)
or "disabled"; "enabled" with a budget is a 400 naming `thinking.type`, because the model
would refuse it. No budget means no max-tokens arithmetic: `maxTokens` goes as sent.

While thinking is on, Anthropic refuses some sampling settings and forced tool use.
`THINKING_RULES` lists them: `temperature` must be 1 or left out, `top_p` at least 0.95
or left out, `top_k` left out, and `tool_choice` "auto" or "none". Anything else is a 400
naming the parameter, or, with `drop_unsupported`, the parameter is left out and listed.
(`response_format` is not refused: its tool is offered without forcing, see
`gateway.translate.shared.structured`.)

Max tokens. Anthropic's `max_tokens` counts the thinking too and must exceed the budget,
which matches OpenAI's `max_completion_tokens` (visible and reasoning tokens alike). So:

* unset: `maxTokens` becomes the budget plus `ANSWER_TOKENS` (4096), room for an answer
  of the usual size after a full budget of thinking; Bedrock's own default would
  otherwise fail every budget above it;
* set and greater than the budget: sent unchanged;
* set and not greater than the budget: a 400 naming the parameter the client set. The
  gateway does not raise a limit the client chose (it is a cost cap), nor shrink a budget
  the client asked for.

Reasoning from earlier turns. Anthropic requires an assistant turn that made tool calls
under thinking to be sent back with its signed reasoning first. Our responses carry it as
`reasoning_content`, `reasoning_signature` and `reasoning_redacted` (base64), and clients
echo those fields on the assistant message; `reasoning_blocks` turns them back into
`reasoningContent` blocks (the text block first, then the redacted ones), which
`gateway.translate.openai_chat.messages` places first in the assistant's blocks. They are sent
only when this request turns thinking on: models reject reasoning blocks otherwise, and a
conversation that moves to another model or turns thinking off must keep working.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from gateway.errors import InvalidRequestError, UnsupportedParameterError
from gateway.schemas.converse import ContentBlock, InferenceConfiguration, ReasoningTextBlock
from gateway.schemas.openai import AssistantMessage, ChatCompletionRequest

__all__ = [
    "ADAPTIVE_EFFORTS",
    "ANSWER_TOKENS",
    "EFFORT_LEVELS",
    "MIN_BUDGET_TOKENS",
    "THINKING_RULES",
    "Thinking",
    "ThinkingRule",
    "fit_max_tokens",
    "reasoning_blocks",
    "requested_thinking",
    "thinking_fields",
    "without_refused_settings",
]

# OpenAI `reasoning_effort` -> the budget key in the model's options (None: no thinking).
EFFORT_LEVELS: Final[Mapping[str, str | None]] = {
    "none": None,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
    "max": "high",
}

# OpenAI `reasoning_effort` -> Converse `outputConfig.effort` on adaptive models (None: no
# thinking). Bedrock documents low, medium, high, xhigh and max for `effort`.
ADAPTIVE_EFFORTS: Final[Mapping[str, str | None]] = {
    "none": None,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "xhigh",
    "max": "max",
}

MIN_BUDGET_TOKENS: Final = 1024  # Anthropic's minimum thinking budget
ANSWER_TOKENS: Final = 4096


@dataclass(frozen=True, slots=True)
class Thinking:
    """Thinking to turn on: a budget (`budget_tokens`), or adaptive (`effort`, maybe None)."""

    budget_tokens: int | None
    param: str  # the parameter that asked for it: "reasoning_effort" or "thinking"
    adaptive: bool = False
    effort: str | None = None  # adaptive only: Converse outputConfig.effort


@dataclass(frozen=True, slots=True)
class ThinkingRule:
    allowed: Callable[[Any], bool]
    reason: str  # completes "While the model reasons, ..."


def _never(value: Any) -> bool:
    return False


# Parameter -> the values Anthropic accepts while thinking ("Extended thinking",
# Anthropic's documentation: no temperature or top_k changes, top_p from 0.95 to 1, no
# forced tool use). `top_k` is an extra field; the others are request fields.
THINKING_RULES: Final[Mapping[str, ThinkingRule]] = {
    "temperature": ThinkingRule(lambda v: v == 1, "'temperature' must be 1 or left out"),
    "top_p": ThinkingRule(lambda v: v >= 0.95, "'top_p' must be at least 0.95 or left out"),
    "top_k": ThinkingRule(_never, "'top_k' must be left out"),
    "tool_choice": ThinkingRule(
        lambda v: v in ("auto", "none"),
        "'tool_choice' must be 'auto' or 'none': the model cannot be forced to call a tool",
    ),
}


def requested_thinking(
    req: ChatCompletionRequest,
    extra: Mapping[str, Any],
    *,
    supported: bool,
    budgets: Mapping[str, int],
    drop: bool,
    dropped: list[str],
    adaptive: bool = False,
) -> Thinking | None:
    """The thinking the request asks for, checked against the model; None for none."""
    raw = extra.get("thinking")
    asked: dict[str, Thinking] = {}
    if adaptive:
        effort = ADAPTIVE_EFFORTS[req.reasoning_effort] if req.reasoning_effort else None
        if effort is not None:
            asked["reasoning_effort"] = Thinking(None, "reasoning_effort", True, effort)
        if raw is not None and _adaptive_thinking(raw):
            asked["thinking"] = Thinking(None, "thinking", True)
    else:
        level = EFFORT_LEVELS[req.reasoning_effort] if req.reasoning_effort else None
        if level is not None:
            asked["reasoning_effort"] = Thinking(budgets[level], "reasoning_effort")
        budget = None if raw is None else _thinking_budget(raw)
        if budget is not None:
            asked["thinking"] = Thinking(budget, "thinking")
    if not asked:
        return None
    if not supported:
        for name in asked:
            if not drop:
                raise UnsupportedParameterError(
                    f"This model does not support reasoning; remove '{name}', or ask the "
                    "operator to enable drop_unsupported_params.",
                    param=name,
                )
            dropped.append(name)
        return None
    if raw is not None and req.reasoning_effort is not None:
        raise InvalidRequestError(
            "Send either 'reasoning_effort' or 'thinking', not both.", param="thinking"
        )
    ((_, thinking),) = asked.items()
    return thinking


def _adaptive_thinking(raw: Any) -> bool:
    """`thinking` on an adaptive model: True for {"type": "adaptive"}, False for disabled."""
    if not isinstance(raw, dict):
        raise InvalidRequestError(
            'thinking must be an object such as {"type": "adaptive"}.', param="thinking"
        )
    kind = raw.get("type")
    if kind == "enabled":
        raise UnsupportedParameterError(
            "This model thinks adaptively and refuses a thinking budget: send "
            '\'reasoning_effort\' (or thinking {"type": "adaptive"}) instead.',
            param="thinking.type",
        )
    if kind not in ("adaptive", "disabled"):
        raise InvalidRequestError(
            "thinking.type must be 'adaptive' or 'disabled'.", param="thinking.type"
        )
    for key in raw:
        if key != "type":
            raise InvalidRequestError(
                f"Unknown field '{key}' in thinking.", param=f"thinking.{key}"
            )
    return bool(kind == "adaptive")


def _thinking_budget(raw: Any) -> int | None:
    if not isinstance(raw, dict):
        raise InvalidRequestError(
            'thinking must be an object such as {"type": "enabled", "budget_tokens": 2048}.',
            param="thinking",
        )
    kind = raw.get("type")
    if kind not in ("enabled", "disabled"):
        raise InvalidRequestError(
            "thinking.type must be 'enabled' or 'disabled'.", param="thinking.type"
        )
    allowed = {"type", "budget_tokens"} if kind == "enabled" else {"type"}
    for key in raw:
        if key not in allowed:
            raise InvalidRequestError(
                f"Unknown field '{key}' in thinking.", param=f"thinking.{key}"
            )
    if kind == "disabled":
        return None
    budget = raw.get("budget_tokens")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < MIN_BUDGET_TOKENS:
        raise InvalidRequestError(
            f"thinking.budget_tokens must be an integer of at least {MIN_BUDGET_TOKENS}.",
            param="thinking.budget_tokens",
        )
    return budget


def without_refused_settings(
    req: ChatCompletionRequest, extra: dict[str, Any], *, drop: bool, dropped: list[str]
) -> ChatCompletionRequest:
    """`req` without the settings `THINKING_RULES` refuses; raises unless `drop`.

    `extra` (the request's extra fields) loses a refused `top_k` in place.
    """
    removed: dict[str, Any] = {}
    for name, rule in THINKING_RULES.items():
        is_field = name in ChatCompletionRequest.model_fields
        value = getattr(req, name) if is_field else extra.get(name)
        if value is None or rule.allowed(value):
            continue
        if not drop:
            raise UnsupportedParameterError(
                f"While the model reasons, {rule.reason}. Remove it, turn reasoning off, or "
                "ask the operator to enable drop_unsupported_params.",
                param=name,
            )
        dropped.append(name)
        if is_field:
            removed[name] = None
        else:
            del extra[name]
    return req.model_copy(update=removed) if removed else req


def thinking_fields(thinking: Thinking) -> dict[str, Any]:
    """The `additionalModelRequestFields` entry that turns thinking on."""
    if thinking.adaptive:
        return {"thinking": {"type": "adaptive"}}
    return {"thinking": {"type": "enabled", "budget_tokens": thinking.budget_tokens}}


def fit_max_tokens(
    config: InferenceConfiguration, thinking: Thinking, req: ChatCompletionRequest
) -> None:
    """Make `maxTokens` leave room beyond the budget, or refuse; see the module docstring."""
    budget = thinking.budget_tokens
    if budget is None:  # adaptive: no budget to make room for
        return
    current = config.get("maxTokens")
    if current is None:
        config["maxTokens"] = budget + ANSWER_TOKENS
        return
    if current <= budget:
        param = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
        raise InvalidRequestError(
            f"'{param}' is {current}, but it counts the reasoning too and must exceed the "
            f"reasoning budget of {budget} tokens (from '{thinking.param}'). Raise it, or ask "
            "for less reasoning.",
            param=param,
        )


def reasoning_blocks(message: AssistantMessage, index: int) -> list[ContentBlock]:
    """The `reasoningContent` blocks for the reasoning fields echoed on an assistant message."""
    blocks: list[ContentBlock] = []
    content = message.get("reasoning_content")
    signature = message.get("reasoning_signature")
    if content or signature:
        text: ReasoningTextBlock = {"text": content or ""}
        if signature:
            text["signature"] = signature
        blocks.append({"reasoningContent": {"reasoningText": text}})
    for k, blob in enumerate(message.get("reasoning_redacted") or ()):
        blocks.append({"reasoningContent": {"redactedContent": _redacted(blob, index, k)}})
    return blocks


def _redacted(blob: str, index: int, k: int) -> bytes:
    try:
        data = base64.b64decode(blob, validate=True) if blob.isascii() else b""
    except binascii.Error:
        data = b""
    if not data:
        raise InvalidRequestError(
            "Redacted reasoning must be sent back exactly as received: non-empty standard base64.",
            param=f"messages[{index}].reasoning_redacted[{k}]",
        )
    return data
