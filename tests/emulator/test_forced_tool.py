"""Issue 19, item 19: a forced tool choice gets a call to that tool, arguments from its schema."""

from __future__ import annotations

import json
from typing import Any, Literal

import pydantic
import pytest

from gateway.emulator.schema_example import example_for
from gateway.emulator.script import parse_script

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 20},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit", "days"],
}


def body(tool_choice: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "tools": [
            {"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object"}}}},
            {"toolSpec": {"name": "get_weather", "inputSchema": {"json": WEATHER}}},
        ]
    }
    if tool_choice is not None:
        config["toolChoice"] = tool_choice
    return {
        "messages": [{"role": "user", "content": [{"text": "Weather?"}]}],
        "toolConfig": config,
        **extra,
    }


def test_a_named_forced_tool_is_called_with_schema_valid_arguments() -> None:
    script = parse_script(body({"tool": {"name": "get_weather"}}))
    (call,) = script.tool_calls
    assert call.name == "get_weather" and script.stop_reason == "tool_use" and script.reply == ""
    assert call.input == {"city": "example cityxxxxxxxx", "unit": "celsius", "days": 1}
    assert json.loads(call.input_json) == call.input


def test_any_forces_the_first_tool() -> None:
    (call,) = parse_script(body({"any": {}})).tool_calls
    assert call.name == "lookup" and call.input == {}


@pytest.mark.parametrize("choice", [None, {"auto": {}}])
def test_auto_or_no_choice_keeps_the_text_answer(choice: dict[str, Any] | None) -> None:
    script = parse_script(body(choice))
    assert script.tool_calls == () and script.reply == "You said: Weather?"


def test_a_script_still_wins_over_the_forced_tool() -> None:
    forced = body({"tool": {"name": "get_weather"}})
    forced["messages"][0]["content"][0]["text"] = 'x\n@emulator {"reply": "plain"}'
    script = parse_script(forced)
    assert script.tool_calls == () and script.reply == "plain"


class Address(pydantic.BaseModel):
    street: str
    zip: str = pydantic.Field(min_length=5, max_length=5)


class Person(pydantic.BaseModel):
    name: str
    age: int = pydantic.Field(ge=18)
    score: float
    role: Literal["admin", "user"]
    tags: list[str] = pydantic.Field(min_length=2)
    nickname: str | None
    address: Address
    others: list[Address]
    active: bool


def test_pydantic_schemas_get_valid_examples() -> None:
    value = example_for(Person.model_json_schema())
    person = Person.model_validate(value)
    assert person.age == 18 and person.role == "admin" and len(person.tags) == 2
