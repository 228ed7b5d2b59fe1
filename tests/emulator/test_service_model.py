"""The emulator's tables agree with botocore's Bedrock Runtime service model."""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest

from gateway.emulator.errors import BEDROCK_ERRORS, STREAM_EXCEPTIONS
from gateway.emulator.script import STOP_REASONS


@pytest.fixture(scope="module")
def model() -> Any:
    return botocore.session.get_session().get_service_model("bedrock-runtime")


def test_error_statuses(model: Any) -> None:
    for name, (status, _) in BEDROCK_ERRORS.items():
        shape = model.shape_for(name)
        assert shape.metadata["exception"] is True
        assert shape.metadata["error"]["httpStatusCode"] == status, name
    declared = {
        e.name
        for op in ("Converse", "ConverseStream", "InvokeModel")
        for e in model.operation_model(op).error_shapes
    }
    assert set(BEDROCK_ERRORS) == declared


def test_stream_exceptions_and_stop_reasons(model: Any) -> None:
    output = model.shape_for("ConverseStreamOutput")
    exceptions = {name for name, shape in output.members.items() if shape.metadata.get("exception")}
    assert set(STREAM_EXCEPTIONS) == exceptions
    assert list(STOP_REASONS) == model.shape_for("StopReason").enum
