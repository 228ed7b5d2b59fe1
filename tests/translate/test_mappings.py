"""FINISH_REASONS, one row per Converse stop reason."""

from __future__ import annotations

import botocore.session
import pytest

from gateway.translate.shared.finish_reasons import FINISH_REASONS, finish_reason


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("content_filtered", "content_filter"),
        ("guardrail_intervened", "content_filter"),
        ("malformed_model_output", "stop"),
        ("", "stop"),
        (None, "stop"),
    ],
)
def test_finish_reason(stop_reason: str | None, expected: str) -> None:
    assert finish_reason(stop_reason) == expected


def test_every_stop_reason_of_the_service_model_has_a_row() -> None:
    """A new Bedrock stop reason must be mapped on purpose, not fall to the default."""
    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    assert set(model.shape_for("StopReason").enum) <= set(FINISH_REASONS)


def test_every_row_maps_to_an_openai_finish_reason() -> None:
    assert set(FINISH_REASONS.values()) <= {"stop", "length", "tool_calls", "content_filter"}
