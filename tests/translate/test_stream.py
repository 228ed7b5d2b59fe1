"""StreamTranslator state and edge cases that the goldens do not pin one by one."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.lib.streaming._deltas import accumulate_delta

from gateway.translate.openai_chat.response import converse_to_openai_response, openai_usage
from gateway.translate.openai_chat.stream import StreamTranslator, error_event

START = {"messageStart": {"role": "assistant"}}
USAGE = {
    "inputTokens": 3,
    "outputTokens": 7,
    "totalTokens": 30,
    "cacheReadInputTokens": 15,
    "cacheWriteInputTokens": 5,
}


def _translator(*, include_usage: bool = False, **kwargs: Any) -> StreamTranslator:
    return StreamTranslator(
        completion_id="chatcmpl-1", model="m", created=1, include_usage=include_usage, **kwargs
    )


def _text(block: int, text: str) -> dict[str, Any]:
    return {"contentBlockDelta": {"contentBlockIndex": block, "delta": {"text": text}}}


def _tool_start(block: int, call_id: str, name: str) -> dict[str, Any]:
    start = {"toolUse": {"toolUseId": call_id, "name": name}}
    return {"contentBlockStart": {"contentBlockIndex": block, "start": start}}


def _tool_input(block: int, fragment: str) -> dict[str, Any]:
    delta = {"toolUse": {"input": fragment}}
    return {"contentBlockDelta": {"contentBlockIndex": block, "delta": delta}}


def _reasoning(block: int, **delta: Any) -> dict[str, Any]:
    return {"contentBlockDelta": {"contentBlockIndex": block, "delta": {"reasoningContent": delta}}}


def _stop(reason: str) -> dict[str, Any]:
    return {"messageStop": {"stopReason": reason}}


def _metadata(**usage: int) -> dict[str, Any]:
    return {"metadata": {"usage": usage, "metrics": {"latencyMs": 1}}}


def _feed_all(translator: StreamTranslator, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [chunk for event in events for chunk in translator.feed(event)] + translator.flush()


def _deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [choice["delta"] for chunk in chunks for choice in chunk["choices"]]


@pytest.mark.parametrize("block", [0, 1, 3])
def test_first_tool_call_is_index_0_whatever_its_content_block(block: int) -> None:
    translator = _translator()
    events = [START, *(_text(i, "x") for i in range(block)), _tool_start(block, "t1", "f")]
    chunks = _feed_all(translator, [*events, _tool_input(block, "{}"), _stop("tool_use")])
    calls = [call for delta in _deltas(chunks) for call in delta.get("tool_calls", [])]
    assert {call["index"] for call in calls} == {0}


def test_first_delta_of_a_tool_call_names_it_and_later_ones_only_add_arguments() -> None:
    translator = _translator(tool_names={"lookup_v2": "lookup.v2"})
    translator.feed(START)
    [first] = translator.feed(_tool_start(0, "tooluse_1", "lookup_v2"))
    [later] = translator.feed(_tool_input(0, '{"a":1}'))
    assert first["choices"][0]["delta"] == {
        "tool_calls": [
            {
                "index": 0,
                "id": "tooluse_1",
                "type": "function",
                "function": {"name": "lookup.v2", "arguments": ""},
            }
        ]
    }
    assert later["choices"][0]["delta"] == {
        "tool_calls": [{"index": 0, "function": {"arguments": '{"a":1}'}}]
    }


def test_role_chunk_comes_first_even_without_message_start() -> None:
    chunks = _feed_all(_translator(), [_text(0, "hi"), _stop("end_turn")])
    assert _deltas(chunks) == [
        {"role": "assistant", "content": "", "refusal": None},
        {"content": "hi"},
        {},
    ]


@pytest.mark.parametrize(
    "event",
    [_text(0, ""), _reasoning(0, text=""), _reasoning(0, signature=""), _tool_input(0, "")],
)
def test_empty_deltas_produce_nothing(event: dict[str, Any]) -> None:
    translator = _translator()
    translator.feed(START)
    assert translator.feed(event) == []
    assert translator.output_chars == 0


def test_input_for_a_block_that_never_started_is_dropped() -> None:
    translator = _translator()
    translator.feed(START)
    assert translator.feed(_tool_input(4, '{"x": 1}')) == []


def test_only_the_first_signature_is_sent() -> None:
    translator = _translator()
    translator.feed(START)
    [chunk] = translator.feed(_reasoning(0, signature="sig-a"))
    assert chunk["choices"][0]["delta"] == {"reasoning_signature": "sig-a"}
    assert translator.feed(_reasoning(2, signature="sig-b")) == []


@pytest.mark.parametrize(
    ("blob", "sent"), [(b"\x00\xffsecret", "AP9zZWNyZXQ="), ("AP9zZWNyZXQ=", "AP9zZWNyZXQ=")]
)
def test_redacted_reasoning_is_sent_as_base64(blob: bytes | str, sent: str) -> None:
    translator = _translator()
    translator.feed(START)
    [chunk] = translator.feed(_reasoning(0, redactedContent=blob))
    assert chunk["choices"][0]["delta"] == {"reasoning_redacted": [sent]}
    assert translator.output_chars == 0


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"futureEvent": {"x": 1}},
        {"contentBlockStop": {}},
        {"messageStop": "not a dict"},
        {"internalServerException": {"message": "boom"}},
    ],
)
def test_unknown_or_malformed_events_are_counted_not_raised(event: dict[str, Any]) -> None:
    translator = _translator()
    assert translator.feed(event) == []
    assert translator.unknown_events == 1


def test_events_without_output_and_unsupported_deltas_produce_nothing() -> None:
    translator = _translator()
    translator.feed(START)
    citation = {"citation": {"title": "doc", "sourceContent": [{"text": "x"}]}}
    assert translator.feed({"contentBlockDelta": {"contentBlockIndex": 0, "delta": citation}}) == []
    assert translator.feed({"contentBlockStart": {"contentBlockIndex": 1, "start": {}}}) == []
    assert translator.feed({"contentBlockStop": {"contentBlockIndex": 0}}) == []
    assert translator.unknown_events == 0


def test_finish_is_sent_exactly_once() -> None:
    translator = _translator()
    chunks = _feed_all(translator, [START, _text(0, "a"), _stop("max_tokens"), _stop("end_turn")])
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, "length"]
    assert (translator.stop_reason, translator.finish_reason) == ("max_tokens", "length")
    assert translator.flush() == []


def test_unknown_stop_reason_finishes_with_stop() -> None:
    translator = _translator()
    chunks = _feed_all(translator, [START, _stop("a_stop_reason_of_2030")])
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert translator.stop_reason == "a_stop_reason_of_2030"


@pytest.mark.parametrize("reason", ["malformed_tool_use", "malformed_model_output"])
def test_a_malformed_answer_ends_with_an_error_not_a_finish(reason: str) -> None:
    translator = _translator(include_usage=True)
    metadata = {"metadata": {"usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}}}
    chunks = _feed_all(translator, [START, _text(0, "par"), _stop(reason), metadata])
    assert chunks[-1] == {"error": translator.error.to_openai()["error"]}  # type: ignore[union-attr]
    assert chunks[-1]["error"]["code"] == reason
    assert all(chunk.get("choices", [{}])[0].get("finish_reason") is None for chunk in chunks[:-1])
    assert translator.finish_reason is None and translator.stop_reason == reason
    assert translator.usage == metadata["metadata"]["usage"]  # still recorded
    assert translator.flush() == []


def test_the_tier_bedrock_served_on_is_kept_from_the_metadata() -> None:
    translator = _translator()
    assert translator.service_tier is None
    metadata = {"metadata": {"usage": {}, "serviceTier": {"type": "flex"}}}
    _feed_all(translator, [START, _stop("end_turn"), metadata])
    assert translator.service_tier == "flex"


def test_flush_supplies_the_finish_a_cut_stream_never_sent() -> None:
    translator = _translator()
    chunks = _feed_all(translator, [START, _text(0, "partial")])
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert translator.stop_reason is None
    assert translator.finish_reason == "stop"


def test_flush_closes_a_tool_call_that_never_got_input() -> None:
    translator = _translator()
    chunks = _feed_all(translator, [START, _tool_start(0, "t", "now")])
    assert _deltas(chunks)[-2:] == [
        {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]},
        {},
    ]
    assert translator.finish_reason == "tool_calls"


def test_usage_is_recorded_without_include_usage_but_not_sent() -> None:
    translator = _translator(include_usage=False)
    chunks = _feed_all(translator, [START, _text(0, "a"), _stop("end_turn"), _metadata(**USAGE)])
    assert all("usage" not in chunk for chunk in chunks)
    assert translator.usage == USAGE


@pytest.mark.parametrize("metadata_first", [False, True])
def test_usage_chunk_is_last_and_matches_the_non_streaming_numbers(metadata_first: bool) -> None:
    translator = _translator(include_usage=True)
    tail = [_metadata(**USAGE), _stop("end_turn")]
    if not metadata_first:
        tail.reverse()
    chunks = _feed_all(translator, [START, _text(0, "a"), *tail])
    assert chunks[-1] == {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [],
        "usage": openai_usage(USAGE),
    }
    assert chunks[-1]["usage"]["total_tokens"] == USAGE["totalTokens"]
    assert [chunk["usage"] for chunk in chunks[:-1]] == [None] * (len(chunks) - 1)


def test_no_usage_chunk_when_bedrock_sent_no_metadata() -> None:
    translator = _translator(include_usage=True)
    chunks = _feed_all(translator, [START, _text(0, "a"), _stop("end_turn")])
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert translator.usage is None


def test_output_size_counts_text_reasoning_and_arguments() -> None:
    translator = _translator()
    events = [
        START,
        _reasoning(0, text="abcd"),
        _reasoning(0, signature="not counted"),
        _text(1, "héllo"),
        _tool_start(2, "t", "f"),
        _tool_input(2, '{"a":1}'),
    ]
    _feed_all(translator, events)
    assert translator.output_chars == 4 + 5 + 7
    assert translator.estimated_output_tokens() == 4  # ceil(16 / 4)
    translator.feed(_text(1, "x"))
    assert translator.estimated_output_tokens() == 5  # ceil(17 / 4)


def test_a_stream_accumulates_to_the_non_streaming_message() -> None:
    """The same answer streamed and not streamed gives a client the same message."""
    blob = b"\x01\x02opaque"
    events = [
        START,
        _reasoning(0, text="Think "),
        _reasoning(0, text="hard."),
        _reasoning(0, signature="sig"),
        _reasoning(1, redactedContent=blob),
        _text(2, "Let me "),
        _text(2, "look."),
        _tool_start(3, "tooluse_a", "get"),
        _tool_input(3, '{"k":'),
        _tool_input(3, '"v"}'),
        _tool_start(4, "tooluse_b", "noop"),
        _stop("tool_use"),
    ]
    response = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {
                        "reasoningContent": {
                            "reasoningText": {"text": "Think hard.", "signature": "sig"}
                        }
                    },
                    {"reasoningContent": {"redactedContent": blob}},
                    {"text": "Let me look."},
                    {"toolUse": {"toolUseId": "tooluse_a", "name": "get", "input": {"k": "v"}}},
                    {"toolUse": {"toolUseId": "tooluse_b", "name": "noop", "input": {}}},
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 1, "outputTokens": 2, "totalTokens": 3},
    }
    chunks = _feed_all(_translator(), events)
    streamed: dict[object, object] = {}
    for delta in _deltas(chunks):
        streamed = accumulate_delta(streamed, json.loads(json.dumps(delta)))
    for call in streamed["tool_calls"]:  # type: ignore[attr-defined]
        del call["index"]

    expected = converse_to_openai_response(response, completion_id="c", model="m", created=1)
    message = expected["choices"][0]["message"]
    del message["annotations"]
    assert streamed == message


@pytest.mark.parametrize(
    ("name", "type_", "code"),
    [
        ("modelStreamErrorException", "server_error", "model_stream_error"),
        ("ThrottlingException", "rate_limit_error", "rate_limit_exceeded"),
        ("validationException", "invalid_request_error", "invalid_request"),
    ],
)
def test_error_event_has_the_non_streaming_error_shape(name: str, type_: str, code: str) -> None:
    payload = error_event(name, "went wrong")
    assert payload == {
        "error": {
            "message": payload["error"]["message"],
            "type": type_,
            "param": None,
            "code": code,
        }
    }
    assert "went wrong" in payload["error"]["message"]


def test_content_delta_takes_only_text_that_is_one_content_chunk() -> None:
    """What the encoder writes from its template; everything else is left to `feed`."""
    translator = _translator()
    assert translator.content_delta(_text(0, "early")) is None  # the role chunk is owed
    translator.feed(START)
    assert translator.content_delta(_text(0, "")) is None  # sends nothing
    assert translator.content_delta(_reasoning(0, text="thinking")) is None
    assert translator.content_delta(_tool_input(0, "{}")) is None
    assert translator.content_delta(_stop("end_turn")) is None
    assert translator.output_chars == 0
    assert translator.content_delta(_text(0, "Hello")) == "Hello"
    assert translator.output_chars == 5
    assert translator.content_chunk("Hello") == translator.feed(_text(0, "Hello"))[0]


def test_content_delta_leaves_text_to_feed_while_a_structured_answer_may_come() -> None:
    translator = _translator(structured_output_tool="Answer")
    translator.feed(START)
    assert translator.content_delta(_text(0, "held back")) is None
    assert translator.feed(_text(0, "held back")) == []
