"""Script resolution: defaults, the directive line, token rules and loud refusals."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.emulator.errors import ServiceError
from gateway.emulator.script import (
    ScriptError,
    default_reply,
    parse_invoke_script,
    parse_script,
    word_pieces,
)
from tests.emulator.conftest import user

QUESTION = "What is the capital of France?"


def body(
    text: str = QUESTION, script: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    return {"messages": user(text, script), **extra}


def test_default_answer_echoes_and_counts() -> None:
    script = parse_script(body(system=[{"text": "Be brief please"}]))  # 15 + 30 characters
    assert script.reply == "You said: What is the capital of France?"
    assert script.stop_reason == "end_turn"
    assert script.usage.input_tokens == 12  # ceil(45 / 4)
    assert script.usage.output_tokens == 8  # words of the reply
    assert script.usage.to_wire() == {"inputTokens": 12, "outputTokens": 8, "totalTokens": 20}
    assert script.tool_calls == () and script.fault is None and script.latency_ms is None


def test_the_directive_line_is_neither_echoed_nor_counted() -> None:
    plain = parse_script(body())
    scripted = parse_script(body(script={"chunks": 2}))
    assert scripted.reply == plain.reply
    assert scripted.usage == plain.usage
    assert scripted.chunks == 2


def test_a_directive_must_be_its_own_line() -> None:
    script = parse_script(body('say @emulator {"reply": "x"}'))
    assert script.reply == 'You said: say @emulator {"reply": "x"}'


def test_echo_is_collapsed_and_short() -> None:
    assert default_reply("  a \n\n b  ") == "You said: a b"
    assert default_reply("   ") == "You said nothing."
    assert len(default_reply("word " * 500)) == len("You said: ") + 199


def test_tool_results_are_echoed() -> None:
    messages = [
        {"role": "user", "content": [{"text": "weather?"}]},
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": "t", "name": "w", "input": {}}}],
        },
        {
            "role": "user",
            "content": [{"toolResult": {"toolUseId": "t", "content": [{"text": "sunny"}]}}],
        },
    ]
    assert parse_script({"messages": messages}).reply == "You said: sunny"


def test_defaults_sit_under_the_directive() -> None:
    defaults = {"reply": "default", "delay_ms": 5}
    assert parse_script(body(), defaults=defaults).reply == "default"
    script = parse_script(body(script={"reply": "mine"}), defaults=defaults)
    assert (script.reply, script.delay_ms) == ("mine", 5.0)


def test_scripted_usage_keeps_unscripted_defaults_and_totals_everything() -> None:
    usage = {"outputTokens": 5, "cacheReadInputTokens": 1322, "cacheWriteInputTokens": 0}
    script = parse_script(body(script={"usage": usage}))
    assert script.usage.to_wire() == {
        "inputTokens": 8,
        "outputTokens": 5,
        "cacheReadInputTokens": 1322,
        "cacheWriteInputTokens": 0,
        "totalTokens": 1335,
    }


def test_tool_calls_get_deterministic_ids_and_tool_use() -> None:
    calls = [
        {"name": "a", "input": {"x": 1}},
        {"name": "a", "input": {"x": 1}},
        {"name": "b", "id": "t1"},
    ]
    first = parse_script(body(script={"tool_calls": calls}))
    again = parse_script(body(script={"tool_calls": calls}))
    ids = [call.id for call in first.tool_calls]
    assert ids == [call.id for call in again.tool_calls]
    assert all(re.fullmatch(r"tooluse_[A-Za-z0-9_-]{22}", i) for i in ids[:2])
    assert ids[0] != ids[1] and ids[2] == "t1"
    assert first.reply == "" and first.stop_reason == "tool_use"
    assert first.tool_calls[0].input_json == '{"x":1}' and first.tool_calls[2].input == {}
    assert first.usage.output_tokens == 2 + 2 + 1  # ceil(len(json) / 4) per call


def test_max_tokens_cuts_the_reply() -> None:
    script = parse_script(body(inferenceConfig={"maxTokens": 3}))
    assert (script.reply, script.stop_reason) == ("You said: What", "max_tokens")
    assert script.usage.output_tokens == 3
    scripted = parse_script(
        body(script={"stop_reason": "end_turn"}, inferenceConfig={"maxTokens": 3})
    )
    assert scripted.stop_reason == "end_turn" and scripted.reply.endswith("France?")


def test_fault_defaults_to_throttling_with_fail_times() -> None:
    script = parse_script(body(script={"fail_times": 2, "key": "k"}))
    assert script.fault is not None
    assert (script.fault.name, script.fault.times, script.fault.key) == (
        "ThrottlingException",
        2,
        "k",
    )


def test_fail_regions_defaults_to_throttling_in_those_regions() -> None:
    script = parse_script(body(script={"fail_regions": ["us-east-1", "eu-west-1"]}))
    assert script.fault is not None
    assert (script.fault.name, script.fault.regions) == (
        "ThrottlingException",
        frozenset({"us-east-1", "eu-west-1"}),
    )


def test_stream_error_defaults() -> None:
    error = parse_script(body(script={"stream_error": "ThrottlingException"})).stream_error
    assert error is not None
    assert (error.type, error.after_events, error.original_status_code) == (
        "throttlingException",
        1,
        None,
    )
    model = parse_script(body(script={"stream_error": {"message": "boom"}})).stream_error
    assert model is not None
    assert (model.type, model.original_status_code, model.original_message) == (
        "modelStreamErrorException",
        500,
        "boom",
    )


@pytest.mark.parametrize(
    ("script", "fragment"),
    [
        ({"rply": "x"}, "unknown key 'rply'"),
        ({"tool_calls": [{"nmae": "f"}]}, "unknown key 'nmae' in tool_calls[0]"),
        ({"usage": {"totalTokens": 3}}, "totalTokens' is computed"),
        ({"usage": {"input_tokens": 3}}, "unknown key 'input_tokens' in 'usage'"),
        ({"chunks": 0}, "'chunks' must be an integer >= 1"),
        ({"chunks": True}, "'chunks' must be an integer"),
        ({"delay_ms": -1}, "'delay_ms' must be between"),
        ({"delay_ms": "5"}, "'delay_ms' must be a number"),
        ({"stop_reason": "done"}, "'stop_reason' must be one of"),
        ({"error": "TeapotException"}, "'error.type' must be one of"),
        ({"error": {"type": "ThrottlingException", "msg": "x"}}, "unknown key 'msg'"),
        ({"stream_error": {"type": "accessDeniedException"}}, "'stream_error.type'"),
        (
            {"stream_error": {"type": "throttlingException", "original_status_code": 500}},
            "original_",
        ),
        ({"reasoning": {"redacted": "not base64!"}}, "must be base64"),
        ({"reasoning": {"redacted": "cmVk", "text": "x"}}, "no text or signature"),
        ({"reasoning": {"signature": "s"}}, "'reasoning.text' must be a non-empty string"),
        ({"tool_calls": [{"name": "f", "input": [1]}]}, "tool_calls[0].input must be an object"),
        ({"tool_calls": {"name": "f"}}, "'tool_calls' must be a list"),
        ({"key": "k"}, "'key' is only used together with 'fail_times'"),
        ({"fail_times": 1}, "'key' (required with 'fail_times')"),
        ({"omit_metadata": "yes"}, "'omit_metadata' must be true or false"),
        ({"disconnect_after": -1}, "'disconnect_after' must be an integer >= 0"),
        ({"fail_regions": "us-east-1"}, "'fail_regions' must be a non-empty list"),
        ({"fail_regions": []}, "'fail_regions' must be a non-empty list"),
        ({"fail_regions": [""]}, "'fail_regions[]'"),
    ],
)
def test_bad_directives_are_refused_by_name(script: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ScriptError) as caught:
        parse_script(body(script=script))
    assert caught.value.name == "ValidationException" and caught.value.status == 400
    assert caught.value.message.startswith("Invalid @emulator directive: ")
    assert fragment in caught.value.message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("x\n@emulator {nope", "not valid JSON"), ("x\n@emulator [1]", "expected a JSON object")],
)
def test_directive_json_must_be_an_object(text: str, fragment: str) -> None:
    with pytest.raises(ScriptError, match=re.escape(fragment)):
        parse_script(body(text))


def test_only_one_directive() -> None:
    messages = [{"role": "user", "content": [{"text": "@emulator {}"}, {"text": "@emulator {}"}]}]
    with pytest.raises(ServiceError, match="Only one @emulator directive"):
        parse_script({"messages": messages})
    with pytest.raises(ServiceError, match="Only one @emulator directive"):
        parse_script(body("@emulator {}\n@emulator {}"))


def test_directives_in_history_are_ignored() -> None:
    messages = [
        *user("first", {"error": "ThrottlingException"}),
        {"role": "assistant", "content": [{"text": "ok"}]},
        *user("second"),
    ]
    script = parse_script({"messages": messages})
    assert script.fault is None and script.reply == "You said: second"


@pytest.mark.parametrize(
    ("request_body", "fragment"),
    [
        ({}, "Value null at 'messages'"),
        ({"messages": []}, "must start with a user message"),
        ({"messages": "hi"}, "must be a list"),
        ({"messages": [{"role": "assistant", "content": [{"text": "x"}]}]}, "start with a user"),
        ({"messages": [*user("a"), *user("b")]}, "must alternate between user and assistant"),
        ({"messages": [{"role": "system", "content": [{"text": "x"}]}]}, "start with a user"),
        (
            {"messages": [*user("a"), {"role": "robot", "content": [{"text": "x"}]}]},
            "Value 'robot' at 'messages.2.member.role'",
        ),
        ({"messages": [{"role": "user", "content": []}]}, "at messages.0 is empty"),
        ({"messages": [{"role": "user"}]}, "at messages.0 is empty"),
        ({"messages": [{"role": "user", "content": ["x"]}]}, "must be objects"),
    ],
)
def test_conversations_bedrock_rejects(request_body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ServiceError) as caught:
        parse_script(request_body)
    assert caught.value.name == "ValidationException"
    assert fragment in caught.value.message


def test_invoke_scripts_accept_only_their_keys() -> None:
    script = parse_invoke_script(
        '{"error": "ServiceQuotaExceededException", "delay_ms": 3}',
        defaults={"reply": "ignored here", "delay_ms": 1},
    )
    assert script.fault is not None and script.fault.name == "ServiceQuotaExceededException"
    assert script.delay_ms == 3.0
    with pytest.raises(ScriptError, match="'reply' does not apply to InvokeModel"):
        parse_invoke_script('{"reply": "x"}')
    assert parse_invoke_script(None).fault is None


@settings(max_examples=200, deadline=None)
@given(st.text(st.sampled_from("ab \n\t\u00e9"), max_size=40))
def test_word_pieces_rebuild_the_text(text: str) -> None:
    pieces = word_pieces(text)
    assert "".join(pieces) == text
    assert len(pieces) == max(1, len(text.split()))


_THINKING = {
    "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}}
}
_CALL = {"toolUse": {"toolUseId": "t1", "name": "calc", "input": {}}}
_RESULT = {
    "role": "user",
    "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "4"}]}}],
}
_SIGNED = {"reasoningContent": {"reasoningText": {"text": "hm", "signature": "c2ln"}}}


@pytest.mark.parametrize(
    ("assistant", "fragment"),
    [
        (
            [_CALL],
            "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`",
        ),
        ([{"text": "Let me see."}, _CALL], "but found `text`"),
        (
            [{"reasoningContent": {"reasoningText": {"text": "hm"}}}, _CALL],
            "thinking.signature: Field required",
        ),
    ],
)
def test_a_tool_turn_under_thinking_needs_its_signed_reasoning(
    assistant: list[dict[str, Any]], fragment: str
) -> None:
    messages = [*user("a"), {"role": "assistant", "content": assistant}, _RESULT]
    with pytest.raises(ServiceError) as caught:
        parse_script({"messages": messages, **_THINKING})
    assert caught.value.name == "ValidationException" and fragment in caught.value.message


@pytest.mark.parametrize(
    "assistant",
    [
        [_SIGNED, _CALL],
        [{"reasoningContent": {"redactedContent": "cmVk"}}, _CALL],
        [{"text": "no tools, no rule"}],
    ],
)
def test_signed_or_redacted_reasoning_first_passes(assistant: list[dict[str, Any]]) -> None:
    messages = [*user("a"), {"role": "assistant", "content": assistant}, _RESULT]
    assert parse_script({"messages": messages, **_THINKING}).reply.startswith("You said:")


def test_without_thinking_the_rule_does_not_apply() -> None:
    messages = [*user("a"), {"role": "assistant", "content": [_CALL]}, _RESULT]
    assert parse_script({"messages": messages}).reply == "You said: 4"
