"""Lookup tables shared by the response and stream translators.

A table rather than an if-chain, so that every row is visible in one place and one
parametrized test walks all of them (`tests/translate/test_mappings.py`).
"""

from __future__ import annotations

__all__ = ["DEFAULT_FINISH_REASON", "FINISH_REASONS", "finish_reason"]

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
