"""`response_format` end to end: the tool it becomes, and the content clients parse back.

The OpenAI SDK's `client.chat.completions.parse(response_format=Model)` sends a strict
`json_schema` built from the model and validates the answer's `content` into it; the
tests drive the SDK's own request builder and parser around our two translators.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
from openai.lib._parsing._completions import parse_chat_completion, type_to_response_format_param
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from gateway.errors import InvalidRequestError
from gateway.schemas.openai import ChatCompletionRequest
from gateway.translate.openai_chat.request import (
    ConverseCall,
    ModelOptions,
    openai_to_converse_request,
)
from gateway.translate.openai_chat.response import converse_to_openai_response
from gateway.translate.openai_chat.stream import StreamTranslator
from gateway.translate.shared.structured import JSON_OBJECT_TOOL, RESPONSE_TOOL_DESCRIPTION

MODEL = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
USER = {"role": "user", "content": "Where were the 2024 Olympics held?"}
WEATHER = {"type": "function", "function": {"name": "get_weather"}}
JSON_OBJECT = {"type": "json_object"}


class CityLocation(pydantic.BaseModel):
    city: str
    country: str


def _translate(fields: dict[str, Any], *, thinking: bool = False) -> ConverseCall:
    body = {"model": "m", "messages": [USER], **fields}
    if thinking:
        body["reasoning_effort"] = "low"
    return openai_to_converse_request(
        ChatCompletionRequest.model_validate(body),
        model_id=MODEL,
        options=ModelOptions(reasoning_supported=True),
    )


def _answer(call: ConverseCall, content: list[dict[str, Any]], stop: str) -> dict[str, Any]:
    response = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15},
    }
    return converse_to_openai_response(
        response,
        completion_id="chatcmpl-1",
        model="m",
        created=1,
        tool_names=call.tool_names,
        structured_output_tool=call.structured_output_tool,
    )


def _stream(call: ConverseCall, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    translator = StreamTranslator(
        completion_id="chatcmpl-1",
        model="m",
        created=1,
        include_usage=False,
        tool_names=call.tool_names,
        structured_output_tool=call.structured_output_tool,
    )
    return [chunk for event in events for chunk in translator.feed(event)] + translator.flush()


def _tool_events(block: int, name: str, *fragments: str) -> list[dict[str, Any]]:
    start = {"toolUse": {"toolUseId": f"tooluse_{block}", "name": name}}
    return [
        {"contentBlockStart": {"contentBlockIndex": block, "start": start}},
        *(
            {"contentBlockDelta": {"contentBlockIndex": block, "delta": {"toolUse": {"input": f}}}}
            for f in fragments
        ),
        {"contentBlockStop": {"contentBlockIndex": block}},
    ]


def test_the_sdks_parse_reads_the_answer() -> None:
    response_format = type_to_response_format_param(CityLocation)
    call = _translate({"response_format": response_format})

    [tool] = call.request["toolConfig"]["tools"]
    assert tool["toolSpec"]["name"] == "CityLocation" == call.structured_output_tool
    assert tool["toolSpec"]["inputSchema"]["json"] == response_format["json_schema"]["schema"]
    assert call.request["toolConfig"]["toolChoice"] == {"tool": {"name": "CityLocation"}}

    use = {
        "toolUseId": "t1",
        "name": "CityLocation",
        "input": {"city": "Paris", "country": "France"},
    }
    result = _answer(call, [{"toolUse": use}], "tool_use")
    assert result["choices"][0]["message"]["content"] == '{"city":"Paris","country":"France"}'
    assert "tool_calls" not in result["choices"][0]["message"]
    assert result["choices"][0]["finish_reason"] == "stop"
    parsed = parse_chat_completion(
        response_format=CityLocation,
        input_tools=[],
        chat_completion=ChatCompletion.model_validate(result),
    )
    assert parsed.choices[0].message.parsed == CityLocation(city="Paris", country="France")


def test_the_sdks_stream_helper_reads_the_streamed_answer() -> None:
    call = _translate({"response_format": type_to_response_format_param(CityLocation)})
    events = [
        {"messageStart": {"role": "assistant"}},
        *_tool_events(0, "CityLocation", "", '{"city": "Pa', 'ris", "country": ', '"France"}'),
        {"messageStop": {"stopReason": "tool_use"}},
    ]
    state: ChatCompletionStreamState[CityLocation] = ChatCompletionStreamState(
        response_format=CityLocation, input_tools=[]
    )
    for chunk in _stream(call, events):
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    choice = state.get_final_completion().choices[0]
    assert choice.message.parsed == CityLocation(city="Paris", country="France")
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"


def test_a_client_tool_called_instead_comes_back_as_a_tool_call() -> None:
    call = _translate({"tools": [WEATHER], "response_format": JSON_OBJECT})
    assert call.request["toolConfig"]["toolChoice"] == {"any": {}}
    use = {"toolUseId": "t1", "name": "get_weather", "input": {"city": "Paris"}}
    result = _answer(call, [{"text": "Checking."}, {"toolUse": use}], "tool_use")
    choice = result["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Checking."
    assert [c["function"]["name"] for c in choice["message"]["tool_calls"]] == ["get_weather"]

    chunks = _stream(call, _tool_events(0, "get_weather", '{"city": "Paris"}'))
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("fields", "history", "thinking", "choice"),
    [
        ({}, False, False, {"tool": {"name": JSON_OBJECT_TOOL}}),
        ({"tool_choice": "none"}, False, False, {"tool": {"name": JSON_OBJECT_TOOL}}),
        ({"tools": [WEATHER]}, False, False, {"any": {}}),
        ({"tools": [WEATHER], "tool_choice": "auto"}, False, False, {"any": {}}),
        ({"tools": [WEATHER], "tool_choice": "required"}, False, False, {"any": {}}),
        (
            {
                "tools": [WEATHER],
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            },
            False,
            False,
            {"tool": {"name": "get_weather"}},
        ),
        (
            {"tools": [WEATHER], "tool_choice": "none"},
            False,
            False,
            {"tool": {"name": JSON_OBJECT_TOOL}},
        ),
        (
            {"tools": [WEATHER], "tool_choice": "none"},
            True,
            False,
            {"tool": {"name": JSON_OBJECT_TOOL}},
        ),
        ({}, False, True, None),
        ({"tools": [WEATHER]}, False, True, None),
        ({"tools": [WEATHER], "tool_choice": "none"}, True, True, None),
    ],
)
def test_tool_choice_with_the_response_tool(
    fields: dict[str, Any], history: bool, thinking: bool, choice: dict[str, Any] | None
) -> None:
    body = {"response_format": JSON_OBJECT, **fields}
    if history:
        use = {
            "id": "c1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": "{}"},
        }
        body["messages"] = [
            USER,
            {"role": "assistant", "tool_calls": [use]},
            {"role": "tool", "tool_call_id": "c1", "content": "Sunny"},
        ]
    call = _translate(body, thinking=thinking)
    config = call.request["toolConfig"]
    assert config.get("toolChoice") == choice
    names = [tool["toolSpec"]["name"] for tool in config["tools"]]
    assert names[-1] == JSON_OBJECT_TOOL == call.structured_output_tool
    client_tools_listed = "tools" in fields and (fields.get("tool_choice") != "none" or history)
    assert names[:-1] == (["get_weather"] if client_tools_listed else [])


@pytest.mark.parametrize(
    ("json_schema", "name", "schema"),
    [
        ({"name": "Answer", "schema": {"type": "object"}}, "Answer", {"type": "object"}),
        ({"name": "Answer"}, "Answer", {"type": "object"}),
        (
            {"name": "Answer", "schema": {"properties": {"a": {"type": "integer"}}}},
            "Answer",
            {"type": "object", "properties": {"a": {"type": "integer"}}},
        ),
        ({"name": "my.answer v2", "schema": {}}, "my_answer_v2_", {"type": "object"}),
        ({"name": "get_weather", "schema": {}}, "get_weather_", {"type": "object"}),
    ],
)
def test_response_tool_names_and_schemas(
    json_schema: dict[str, Any], name: str, schema: dict[str, Any]
) -> None:
    call = _translate(
        {"tools": [WEATHER], "response_format": {"type": "json_schema", "json_schema": json_schema}}
    )
    spec = call.request["toolConfig"]["tools"][-1]["toolSpec"]
    assert spec["name"].startswith(name) and spec["name"] == call.structured_output_tool
    assert spec["name"] != "get_weather"
    assert spec["inputSchema"]["json"] == schema
    assert spec["description"] == RESPONSE_TOOL_DESCRIPTION
    assert call.tool_names == {}


def test_the_schema_description_follows_the_instruction() -> None:
    json_schema = {"name": "A", "description": "The user's city.", "schema": {"type": "object"}}
    call = _translate({"response_format": {"type": "json_schema", "json_schema": json_schema}})
    description = call.request["toolConfig"]["tools"][0]["toolSpec"]["description"]
    assert description == f"{RESPONSE_TOOL_DESCRIPTION} The user's city."


@pytest.mark.parametrize("schema_type", ["array", "string", ["object", "null"]])
def test_a_schema_that_is_not_an_object_is_refused(schema_type: Any) -> None:
    json_schema = {"name": "A", "schema": {"type": schema_type, "items": {"type": "string"}}}
    with pytest.raises(InvalidRequestError) as info:
        _translate({"response_format": {"type": "json_schema", "json_schema": json_schema}})
    assert info.value.param == "response_format.json_schema.schema"


def test_text_around_the_answer_is_left_out_and_only_the_first_answer_counts() -> None:
    call = _translate({"response_format": JSON_OBJECT}, thinking=True)
    first = {"toolUseId": "a", "name": JSON_OBJECT_TOOL, "input": {"n": 1}}
    second = {"toolUseId": "b", "name": JSON_OBJECT_TOOL, "input": {"n": 2}}
    blocks = [{"text": "Sure: "}, {"toolUse": first}, {"text": "Done."}, {"toolUse": second}]
    message = _answer(call, blocks, "tool_use")["choices"][0]["message"]
    assert json.loads(message["content"]) == {"n": 1}

    events = [
        {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "Sure: "}}},
        *_tool_events(1, JSON_OBJECT_TOOL, '{"n": 1}'),
        {"contentBlockDelta": {"contentBlockIndex": 2, "delta": {"text": "Done."}}},
        *_tool_events(3, JSON_OBJECT_TOOL, '{"n": 2}'),
        {"messageStop": {"stopReason": "tool_use"}},
    ]
    deltas = [c["choices"][0]["delta"] for c in _stream(call, events)]
    assert "".join(d.get("content") or "" for d in deltas) == '{"n": 1}'
    assert deltas[-1] == {}


def test_an_answer_given_as_text_is_streamed_at_the_end() -> None:
    call = _translate({"response_format": JSON_OBJECT}, thinking=True)
    events = [
        {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": '{"n": '}}},
        {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "3}"}}},
        {"messageStop": {"stopReason": "end_turn"}},
    ]
    chunks = _stream(call, events)
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": "", "refusal": None},
        {"content": '{"n": 3}'},
        {},
    ]


def test_a_cut_stream_still_finishes_the_answer() -> None:
    call = _translate({"response_format": JSON_OBJECT})
    start = {"toolUse": {"toolUseId": "a", "name": JSON_OBJECT_TOOL}}
    chunks = _stream(call, [{"contentBlockStart": {"contentBlockIndex": 0, "start": start}}])
    assert [c["choices"][0]["delta"] for c in chunks][1:] == [{"content": "{}"}, {}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_without_a_response_format_a_tool_of_that_name_is_an_ordinary_call() -> None:
    call = _translate({"tools": [{"type": "function", "function": {"name": JSON_OBJECT_TOOL}}]})
    assert call.structured_output_tool is None
    use = {"toolUseId": "t1", "name": JSON_OBJECT_TOOL, "input": {}}
    result = _answer(call, [{"toolUse": use}], "tool_use")
    assert result["choices"][0]["finish_reason"] == "tool_calls"
    assert result["choices"][0]["message"]["content"] is None
