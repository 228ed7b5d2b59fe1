"""Custom (free-form) tools: a call comes back as a `custom_tool_call` with the raw input,
streamed or not, whatever the JSON fragments of the stand-in function's argument."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.schemas.openai_responses import ResponsesRequest
from gateway.translate.openai_responses.response import converse_to_response, request_echo
from gateway.translate.openai_responses.stream import ResponsesStream
from tests.surfaces.openai_responses.test_stream_golden import decode_sse

PATCH = '*** Begin Patch\n*** Update File: "a.txt"\n-teh\n+the\n*** End Patch'
ECHO = request_echo(ResponsesRequest.model_validate({"model": "m", "input": "x"}), store=False)
EVENTS = TypeAdapter(ResponseStreamEvent)


def _whole(name: str, tool_input: Any) -> dict[str, Any]:
    resp = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"text": "Patching."},
                    {"toolUse": {"toolUseId": "t1", "name": name, "input": tool_input}},
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 3, "outputTokens": 4},
    }
    return converse_to_response(
        resp,
        ECHO,
        response_id="resp_c",
        model="m",
        created_at=1,
        namespaced={"ed__sed": ("ed", "sed")},
        custom={"apply_patch", "ed__sed"},
    )


def test_a_custom_call_carries_the_raw_input() -> None:
    response = _whole("apply_patch", {"input": PATCH})
    _, call = response["output"]
    assert call == {
        "id": "ctc_c_1",
        "type": "custom_tool_call",
        "call_id": "t1",
        "name": "apply_patch",
        "input": PATCH,
    }
    Response.model_validate(response)


def test_a_namespaced_custom_call_gets_its_namespace_back() -> None:
    _, call = _whole("ed__sed", {"input": "s/a/b/"})["output"]
    assert (call["type"], call["name"], call["namespace"], call["input"]) == (
        "custom_tool_call",
        "sed",
        "ed",
        "s/a/b/",
    )


def test_input_not_in_the_expected_shape_is_passed_on_as_written() -> None:
    _, call = _whole("apply_patch", {"patch": "x"})["output"]
    assert json.loads(call["input"]) == {"patch": "x"}


@pytest.mark.parametrize("size", [1, 3, 7, 1000])
def test_streamed_in_any_fragments_it_ends_as_the_whole_response(size: int) -> None:
    arguments = json.dumps({"input": PATCH})
    stream = ResponsesStream(
        ECHO, response_id="resp_c", model="m", created_at=1, custom={"apply_patch"}
    )
    body = stream.start()
    body += stream.feed({"messageStart": {"role": "assistant"}})
    body += stream.feed(
        {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "Patching."}}}
    )
    body += stream.feed({"contentBlockStop": {"contentBlockIndex": 0}})
    start = {"toolUse": {"toolUseId": "t1", "name": "apply_patch"}}
    body += stream.feed({"contentBlockStart": {"contentBlockIndex": 1, "start": start}})
    for i in range(0, len(arguments), size):
        delta = {"toolUse": {"input": arguments[i : i + size]}}
        body += stream.feed({"contentBlockDelta": {"contentBlockIndex": 1, "delta": delta}})
    body += stream.feed({"contentBlockStop": {"contentBlockIndex": 1}})
    body += stream.feed({"messageStop": {"stopReason": "tool_use"}})
    body += stream.feed({"metadata": {"usage": {"inputTokens": 3, "outputTokens": 4}}})
    body += stream.finish()
    events = decode_sse(body)
    for event in events:
        EVENTS.validate_python(event)
    kinds = [e["type"] for e in events]
    assert "response.function_call_arguments.delta" not in kinds
    deltas = [e["delta"] for e in events if e["type"] == "response.custom_tool_call_input.delta"]
    assert deltas == [PATCH]
    (done,) = [e for e in events if e["type"] == "response.custom_tool_call_input.done"]
    assert done["input"] == PATCH
    final = events[-1]["response"]
    whole = _whole("apply_patch", {"input": PATCH})
    assert final["output"] == whole["output"]
