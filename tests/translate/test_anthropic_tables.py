"""Table tests of the Messages pair: each top-level field's fate, betas, errors, Converse input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.errors import (
    AuthenticationError,
    GatewayError,
    InternalError,
    InvalidRequestError,
    NotFoundError,
    OverloadedError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    UnsupportedParameterError,
)
from gateway.translate.anthropic_messages.betas import parse_beta_header, split_betas
from gateway.translate.anthropic_messages.converse import messages_to_converse
from gateway.translate.anthropic_messages.count_tokens import (
    count_tokens_input,
    estimate_input_tokens,
)
from gateway.translate.anthropic_messages.errors import anthropic_error, anthropic_status
from gateway.translate.anthropic_messages.invoke import (
    TOP_LEVEL,
    Action,
    fold_system_messages,
    invoke_response,
    messages_to_invoke_body,
)
from gateway.translate.anthropic_messages.invoke_stream import InvokeStreamEncoder
from gateway.translate.shared.errors import to_upstream_error

BASE: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 10,
    "messages": [{"role": "user", "content": "hi"}],
}
SAMPLE_VALUES: dict[str, Any] = {
    "system": "Be brief.",
    "tools": [{"name": "t", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "auto"},
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 5,
    "stop_sequences": ["X"],
    "output_config": {"effort": "high"},
    "context_management": {"edits": []},
    "stream": True,
    "metadata": {"user_id": '{"session": "s"}'},
    "anthropic_version": "2023-06-01",
    "anthropic_beta": ["effort-2025-11-24"],
    "service_tier": "auto",
    "container": "c-1",
    "mcp_servers": [{"type": "url", "url": "https://example.invalid", "name": "x"}],
    "inference_geo": {"allow": ["us"]},
    # A caller's guardrail fields: dropped and listed, the operator's guardrail applies.
    "guardrailConfig": {"guardrailIdentifier": "mine", "guardrailVersion": "1"},
    "guardrailIdentifier": "mine",
    "guardrailVersion": "DRAFT",
    "trace": "DISABLED",
    "amazon-bedrock-guardrailConfig": {"streamProcessingMode": "ASYNCHRONOUS"},
}


def _invoke(body: dict[str, Any], *, drop: bool = False, betas: list[str] | None = None) -> Any:
    return messages_to_invoke_body(
        body, header_betas=betas or [], allowed_betas={"effort-2025-11-24"}, drop_unsupported=drop
    )


def test_every_row_has_a_sample() -> None:
    assert set(SAMPLE_VALUES) == set(TOP_LEVEL) - {"messages", "max_tokens", "model"}


@pytest.mark.parametrize("name", sorted(SAMPLE_VALUES))
def test_top_level_field(name: str) -> None:
    body = {**BASE, name: SAMPLE_VALUES[name]}
    action = TOP_LEVEL[name]
    if action is Action.REFUSE:
        with pytest.raises(UnsupportedParameterError) as caught:
            _invoke(body)
        assert caught.value.param == name
        call = _invoke(body, drop=True)
        assert call.dropped_params == [name]
        assert name not in json.loads(call.body)
        return
    call = _invoke(body)
    sent = json.loads(call.body)
    if action is Action.FORWARD:
        assert sent[name] == SAMPLE_VALUES[name]
    else:
        # anthropic_version and anthropic_beta are rebuilt, the others never leave.
        assert name not in sent or name in ("anthropic_version", "anthropic_beta")
    assert call.dropped_params == ([name] if action is Action.DROP else [])
    assert sent["anthropic_version"] == "bedrock-2023-05-31"


def test_an_unknown_field_is_refused_by_name() -> None:
    with pytest.raises(UnsupportedParameterError) as caught:
        _invoke({**BASE, "speculative": True})
    assert caught.value.param == "speculative"


def test_body_betas_join_header_betas_and_both_are_filtered() -> None:
    body = {**BASE, "anthropic_beta": ["effort-2025-11-24", "made-up-2099-01-01"]}
    call = _invoke(body, betas=["claude-code-20250219", "effort-2025-11-24"])
    assert json.loads(call.body)["anthropic_beta"] == ["effort-2025-11-24"]
    assert call.dropped_betas == ["claude-code-20250219", "made-up-2099-01-01"]


def test_no_beta_left_means_no_anthropic_beta_key() -> None:
    call = _invoke(BASE, betas=["claude-code-20250219"])
    assert "anthropic_beta" not in json.loads(call.body)


def test_anthropic_beta_in_the_body_must_be_a_list_of_strings() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        _invoke({**BASE, "anthropic_beta": "effort-2025-11-24"})
    assert caught.value.param == "anthropic_beta"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], []),
        (["a, b", "b,c"], ["a", "b", "c"]),
        ([" a ,, "], ["a"]),
    ],
)
def test_parse_beta_header(headers: list[str], expected: list[str]) -> None:
    assert parse_beta_header(headers) == expected


def test_split_betas_keeps_order() -> None:
    assert split_betas(["x", "a", "y", "b"], {"a", "b"}) == (["a", "b"], ["x", "y"])


def test_system_messages_fold_into_user_text_in_place() -> None:
    messages = [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"role": "system", "content": [{"type": "text", "text": "rules"}]},
        {"role": "user", "content": "three"},
    ]
    assert fold_system_messages(messages) == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "rules"}, {"type": "text", "text": "three"}],
        },
    ]
    plain = [{"role": "user", "content": "x"}]
    assert fold_system_messages(plain) is plain


def test_system_messages_stay_when_their_beta_is_forwarded() -> None:
    body = {**BASE, "messages": [*BASE["messages"], {"role": "system", "content": "s"}]}
    call = messages_to_invoke_body(
        body,
        header_betas=["mid-conversation-system-2026-04-07"],
        allowed_betas={"mid-conversation-system-2026-04-07"},
        drop_unsupported=False,
    )
    assert json.loads(call.body)["messages"][-1] == {"role": "system", "content": "s"}


def test_invoke_response_takes_usage_and_renames_the_model() -> None:
    body = json.dumps(
        {
            "id": "msg_bdrk_1",
            "model": "claude-sonnet-4-5-20250929",
            "content": [],
            "usage": {
                "input_tokens": 3,
                "output_tokens": 4,
                "cache_read_input_tokens": 5,
                "cache_creation_input_tokens": 6,
            },
        }
    ).encode()
    message, usage = invoke_response(body, model="claude-sonnet-4-5")
    assert message["model"] == "claude-sonnet-4-5"
    assert (usage.input_tokens, usage.output_tokens) == (3, 4)
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (5, 6)
    with pytest.raises(ValueError):
        invoke_response(b"[]", model="m")


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (InvalidRequestError("x"), 400, "invalid_request_error"),
        (AuthenticationError("x"), 401, "authentication_error"),
        (PermissionDeniedError("x"), 403, "permission_error"),
        (NotFoundError("x"), 404, "not_found_error"),
        (PayloadTooLargeError("x"), 413, "request_too_large"),
        (RateLimitError("x", retry_after_s=2), 429, "rate_limit_error"),
        (InternalError("x"), 500, "api_error"),
        (to_upstream_error("ModelErrorException", "m"), 502, "api_error"),
        (OverloadedError("x"), 529, "overloaded_error"),
        (to_upstream_error("ServiceUnavailableException", "m"), 529, "overloaded_error"),
        (to_upstream_error("ModelTimeoutException", "m"), 504, "timeout_error"),
    ],
)
def test_error_table(error: GatewayError, status: int, kind: str) -> None:
    assert anthropic_status(error) == status
    assert anthropic_error(error) == {
        "type": "error",
        "error": {"type": kind, "message": error.message},
    }


def test_count_tokens_counts_the_invoke_body_it_would_send() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "metadata": {}}
    source, call = count_tokens_input(
        body, header_betas=["claude-code-20250219"], allowed_betas=set()
    )
    sent = json.loads(source["invokeModel"]["body"])
    assert sent == {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert call.dropped_betas == ["claude-code-20250219"]


def test_count_tokens_estimate() -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "x" * 40}]}]}
    assert estimate_input_tokens(body) == 10
    assert estimate_input_tokens({"messages": []}) == 1


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking"),
        ({"top_k": 3}, "top_k"),
        ({"output_config": {"effort": "low"}}, "output_config"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0"),
        (
            {"messages": [{"role": "user", "content": [{"type": "search_result"}]}]},
            "messages.0.content.0",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "url", "url": "https://x.invalid"}}
                        ],
                    }
                ]
            },
            "messages.0.content.0.source",
        ),
    ],
)
def test_converse_refuses_what_it_cannot_carry(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        messages_to_converse({**BASE, **extra}, drop_unsupported=False)
    assert caught.value.param == param


def test_converse_drops_model_parameters_when_asked() -> None:
    call = messages_to_converse(
        {**BASE, "top_k": 3, "thinking": {"type": "enabled", "budget_tokens": 1}},
        drop_unsupported=True,
    )
    assert call.dropped_params == ["top_k", "thinking"]


def test_a_guardrail_intervention_is_a_refusal() -> None:
    body = {"id": "m", "stop_reason": "end_turn", "amazon-bedrock-guardrailAction": "INTERVENED"}
    message, usage = invoke_response(json.dumps(body).encode(), model="m")
    assert message == {"id": "m", "stop_reason": "refusal", "model": "m"}
    assert usage.guardrail_intervened
    passed = {
        "id": "m",
        "stop_reason": "end_turn",
        "amazon-bedrock-guardrailAction": "NONE",
        "amazon-bedrock-trace": {"guardrail": {}},
    }
    message, usage = invoke_response(json.dumps(passed).encode(), model="m")
    assert message == {"id": "m", "stop_reason": "end_turn", "model": "m"}
    assert not usage.guardrail_intervened


def test_a_guardrail_intervention_in_a_stream_is_a_refusal() -> None:
    encoder = InvokeStreamEncoder(model="m")
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 3},
        "amazon-bedrock-guardrailAction": "INTERVENED",
    }
    # message_delta waits for the next event, which may still say "intervened".
    assert encoder.feed_payload(json.dumps(delta).encode()) == b""
    stop = {"type": "message_stop", "amazon-bedrock-guardrailAction": "INTERVENED"}
    sent = encoder.feed_payload(json.dumps(stop).encode())
    assert b'"stop_reason":"refusal"' in sent and b"guardrail" not in sent
    assert sent.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    assert encoder.guardrail_intervened


def test_an_intervention_said_on_the_last_chunk_turns_the_held_delta_into_a_refusal() -> None:
    # Bedrock keeps Claude's end_turn and puts its verdict on the stream's last chunk.
    encoder = InvokeStreamEncoder(model="m")
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {}}
    assert encoder.feed_payload(json.dumps(delta).encode()) == b""
    stop = {
        "type": "message_stop",
        "amazon-bedrock-invocationMetrics": {"inputTokenCount": 2, "outputTokenCount": 3},
        "amazon-bedrock-guardrailAction": "INTERVENED",
        "amazon-bedrock-trace": {"guardrail": {}},
    }
    sent = encoder.feed_payload(json.dumps(stop).encode())
    assert sent == (
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":'
        b'"refusal"},"usage":{}}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    assert encoder.guardrail_intervened and encoder.usage.output_tokens == 3


def test_without_an_intervention_the_held_delta_is_sent_unchanged() -> None:
    encoder = InvokeStreamEncoder(model="m")
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}}
    assert encoder.feed_payload(json.dumps(delta).encode()) == b""
    stop = {"type": "message_stop", "amazon-bedrock-guardrailAction": "NONE"}
    sent = encoder.feed_payload(json.dumps(stop).encode())
    assert b'"stop_reason":"end_turn"' in sent and not encoder.guardrail_intervened
    # A stream cut before message_stop still delivers the delta at flush.
    cut = InvokeStreamEncoder(model="m")
    cut.feed_payload(json.dumps(delta).encode())
    assert cut.flush().startswith(b"event: message_delta\n")
    assert cut.flush() == b""
