"""Lookup tables shared by the response and stream translators.

A table rather than an if-chain, so that every row is visible in one place and one
parametrized test walks all of them (`tests/translate/test_mappings.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.errors import UpstreamError

__all__ = [
    "DEFAULT_FINISH_REASON",
    "FAILED_STOP_REASONS",
    "FINISH_REASONS",
    "finish_reason",
    "served_tier",
    "stop_reason_error",
]

# Converse `stopReason` -> OpenAI `finish_reason`. The Converse values are the `StopReason`
# enum of botocore's bedrock-runtime service model; a test fails when botocore grows a value
# this table does not name, so a new stop reason is a reviewed decision, not a silent default.
FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    # The prompt plus the answer filled the model's context window: the answer was cut
    # short for lack of room, which is what OpenAI clients understand by "length".
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}

# Converse stop reasons that mean the answer is unusable, not finished: the model produced
# a tool call whose input does not parse or fit the schema, or output Bedrock could not
# read. No finish_reason would be honest, so the client gets an error that says so (502:
# the model failed, not the caller; OpenAI's SDKs retry it, and a retry often succeeds).
FAILED_STOP_REASONS: dict[str, str] = {
    "malformed_tool_use": (
        "The model produced a malformed tool call (Bedrock stopReason malformed_tool_use); "
        "retry the request."
    ),
    "malformed_model_output": (
        "The model produced output Bedrock could not use (Bedrock stopReason "
        "malformed_model_output); retry the request."
    ),
}

# A stop reason we do not know yet (Bedrock adds them, e.g. `model_context_window_exceeded`
# arrived in 2025) still ends a complete answer. "stop" is the one value every OpenAI client
# treats as "the message is done, show it"; the others ask the client to act (run tools,
# retry with more room, report a filter), which would be a guess.
DEFAULT_FINISH_REASON = "stop"


def finish_reason(stop_reason: str | None) -> str:
    """The OpenAI `finish_reason` for a Converse `stopReason`; unknown or missing -> "stop"."""
    if stop_reason is None:
        return DEFAULT_FINISH_REASON
    return FINISH_REASONS.get(stop_reason, DEFAULT_FINISH_REASON)


def stop_reason_error(stop_reason: str | None) -> UpstreamError | None:
    """The error to send instead of an answer that stopped as `FAILED_STOP_REASONS` says."""
    message = FAILED_STOP_REASONS.get(stop_reason or "")
    if message is None:
        return None
    return UpstreamError(
        message,
        status=502,
        type="server_error",
        code=stop_reason,
        bedrock_error=stop_reason or "",
    )


def served_tier(response: Mapping[str, Any]) -> str | None:
    """The tier Bedrock says it served a Converse response or stream on (`serviceTier.type`
    of the response or the stream's metadata event), or None when it does not say."""
    tier = response.get("serviceTier")
    if isinstance(tier, Mapping) and isinstance(tier.get("type"), str):
        return str(tier["type"])
    return None
