"""FINISH_REASONS, one row per Converse stop reason."""

from __future__ import annotations

import botocore.session
import pytest

from gateway.translate.shared.finish_reasons import (
    FAILED_STOP_REASONS,
    FINISH_REASONS,
    finish_reason,
    stop_reason_error,
)


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
        ("a_stop_reason_of_2030", "stop"),
        ("", "stop"),
        (None, "stop"),
    ],
)
def test_finish_reason(stop_reason: str | None, expected: str) -> None:
    assert finish_reason(stop_reason) == expected


def test_every_stop_reason_of_the_service_model_has_a_row() -> None:
    """A new Bedrock stop reason must be mapped on purpose, not fall to the default."""
    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    assert set(model.shape_for("StopReason").enum) <= set(FINISH_REASONS) | set(FAILED_STOP_REASONS)
    assert not set(FINISH_REASONS) & set(FAILED_STOP_REASONS)


@pytest.mark.parametrize("stop_reason", ["malformed_tool_use", "malformed_model_output"])
def test_malformed_answers_are_errors_in_the_openai_shape(stop_reason: str) -> None:
    error = stop_reason_error(stop_reason)
    assert error is not None
    body = error.to_openai()["error"]
    assert error.status == 502
    assert body["type"] == "server_error" and body["code"] == stop_reason
    assert stop_reason in body["message"] and "malformed" in body["message"]


@pytest.mark.parametrize("stop_reason", [None, "end_turn", "guardrail_intervened", "x"])
def test_other_stop_reasons_are_not_errors(stop_reason: str | None) -> None:
    assert stop_reason_error(stop_reason) is None


def test_every_row_maps_to_an_openai_finish_reason() -> None:
    assert set(FINISH_REASONS.values()) <= {"stop", "length", "tool_calls", "content_filter"}
