"""Golden files for the Responses -> Converse request translation (see the README there),
and the checks every translated request passes: botocore's validator accepts it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from gateway.schemas.openai_responses import ResponsesRequest
from gateway.translate.openai_chat.request import ModelOptions
from gateway.translate.openai_responses.request import ResponsesCall, converse_call, prepare
from tests.translate.wire import to_wire

GOLDEN = Path(__file__).parents[2] / "golden" / "responses" / "request"
CASES = sorted(p.name.removesuffix(".responses.json") for p in GOLDEN.glob("*.responses.json"))
KEY = b"golden-key-golden-key-golden-key"
DEFAULT_MODEL_ID = "anthropic.claude-3-7-sonnet-20250219-v1:0"


def translate(case: str) -> tuple[str, ResponsesCall]:
    body = json.loads((GOLDEN / f"{case}.responses.json").read_text(encoding="utf-8"))
    options = body.pop("_options", {})
    model_id = options.get("model_id", DEFAULT_MODEL_ID)
    supported = options.get("reasoning_supported", False)
    drop = options.get("drop_unsupported", False)
    prepared = prepare(
        ResponsesRequest.model_validate(body),
        reasoning_key=KEY,
        reasoning_supported=supported,
        drop_unsupported=drop,
    )
    call = converse_call(
        prepared,
        model_id=model_id,
        drop_unsupported=drop,
        options=ModelOptions(reasoning_supported=supported),
    )
    return model_id, call


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, update_golden: bool) -> None:
    _, call = translate(case)
    actual = to_wire(
        {
            "request": call.converse.request,
            "dropped": list(call.dropped),
            "dropped_tools": list(call.dropped_tools),
            "namespaced": {name: list(pair) for name, pair in call.namespaced.items()},
            "custom": sorted(call.custom),
            "tool_names": call.tool_names,
            "structured_output_tool": call.converse.structured_output_tool,
            "include_reasoning": call.include_reasoning,
        }
    )
    path = GOLDEN / f"{case}.converse.json"
    if update_golden:
        path.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert path.exists(), f"no expectation for {case}; run pytest --update-golden"
    assert actual == json.loads(path.read_text(encoding="utf-8"))


def test_every_expectation_has_an_input() -> None:
    expected = {p.name.removesuffix(".converse.json") for p in GOLDEN.glob("*.converse.json")}
    assert expected == set(CASES)


@pytest.fixture(scope="module")
def converse_input_shape() -> Any:
    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    return model.operation_model("Converse").input_shape


@pytest.mark.parametrize("case", CASES)
def test_botocore_accepts_the_request(case: str, converse_input_shape: Any) -> None:
    model_id, call = translate(case)
    report = ParamValidator().validate(
        {"modelId": model_id, **call.converse.request}, converse_input_shape
    )
    assert not report.has_errors(), report.generate_report()


@pytest.mark.parametrize("case", CASES)
def test_turns_alternate_from_a_user_turn(case: str) -> None:
    _, call = translate(case)
    roles = [message["role"] for message in call.converse.request["messages"]]
    assert roles == ["user", "assistant"] * (len(roles) // 2) + (["user"] if len(roles) % 2 else [])
