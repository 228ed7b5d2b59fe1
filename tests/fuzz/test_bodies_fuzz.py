"""Bodies no JSON library writes: broken bytes, deep nesting, lone surrogates, huge sizes.

Same properties as `test_requests_fuzz.py` (never a 5xx, errors in OpenAI's shape, one
ledger record per billable request), over the raw bytes of the body and over the sizes a
gateway sees only from a misbehaving or hostile client.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import FUZZ, InProcessGateway, assert_openai_answer

ROUTES = ["/v1/chat/completions", "/v1/embeddings"]

VALID_CHAT = json.dumps(
    {"model": "nova-micro", "messages": [{"role": "user", "content": "Hello there"}]}
).encode()
VALID_EMBEDDING = json.dumps({"model": "titan-embed-text-v2", "input": "Hello there"}).encode()


@st.composite
def damaged(draw: st.DrawFn, valid: bytes) -> bytes:
    """A valid body with one kind of damage."""
    kind = draw(st.sampled_from(["truncate", "flip", "insert", "prefix", "replace"]))
    at = draw(st.integers(0, len(valid)))
    if kind == "truncate":
        return valid[:at]
    if kind == "flip":
        index = min(at, len(valid) - 1)
        return (
            valid[:index] + bytes([valid[index] ^ draw(st.integers(1, 255))]) + valid[index + 1 :]
        )
    if kind == "insert":
        junk = draw(
            st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\\ud800", b"NaN", b","])
            | st.binary(min_size=1, max_size=8)
        )
        return valid[:at] + junk + valid[at:]
    if kind == "prefix":
        return draw(st.sampled_from([b"\xef\xbb\xbf", b" \n\t", b"\xff\xfe", b"[", b"{"])) + valid
    return draw(st.binary(max_size=64))


def check_bodies(app: InProcessGateway, bodies: st.SearchStrategy[tuple[str, bytes]]) -> None:
    @FUZZ
    @given(case=bodies)
    def answers_in_openai_shape(case: tuple[str, bytes]) -> None:
        path, body = case
        assert_openai_answer(app.post(path, content=body))

    answers_in_openai_shape()
    assert app.ledger_rows() == app.billable


def test_damaged_bodies(app: InProcessGateway) -> None:
    check_bodies(
        app,
        st.one_of(
            damaged(VALID_CHAT).map(lambda body: ("/v1/chat/completions", body)),
            damaged(VALID_EMBEDDING).map(lambda body: ("/v1/embeddings", body)),
        ),
    )


def test_arbitrary_bytes(app: InProcessGateway) -> None:
    check_bodies(app, st.tuples(st.sampled_from(ROUTES), st.binary(max_size=256)))


# --- nesting ------------------------------------------------------------------------------


def nested(depth: int) -> str:
    """JSON text nested `depth` levels deep, written by hand: json.dumps would recurse."""
    return '{"a":' * depth + "1" + "}" * depth


NESTED_PLACES = {
    "metadata": '{{"model":"nova-micro","messages":[{{"role":"user","content":"hi"}}],"metadata":{}}}',
    "tool schema": (
        '{{"model":"nova-micro","messages":[{{"role":"user","content":"hi"}}],'
        '"tools":[{{"type":"function","function":{{"name":"f","parameters":{}}}}}]}}'
    ),
    "additional fields": (
        '{{"model":"nova-micro","messages":[{{"role":"user","content":"hi"}}],'
        '"additional_model_request_fields":{}}}'
    ),
    "content part": ('{{"model":"nova-micro","messages":[{{"role":"user","content":[{}]}}]}}'),
}


@pytest.mark.parametrize("depth", [50, 200])
@pytest.mark.parametrize("place", sorted(NESTED_PLACES))
def test_deep_nesting_inside_a_request(app: InProcessGateway, place: str, depth: int) -> None:
    body = NESTED_PLACES[place].format(nested(depth))
    assert_openai_answer(app.post("/v1/chat/completions", content=body.encode()))


@pytest.mark.parametrize("path", ROUTES)
def test_nesting_past_what_the_parser_takes_is_a_400(app: InProcessGateway, path: str) -> None:
    response = app.post(path, content=("[" * 100_000 + "]" * 100_000).encode())
    assert response.status_code == 400
    assert_openai_answer(response)


@pytest.mark.parametrize("place", ["tool schema", "additional fields"])
def test_nesting_deeper_than_bedrock_can_be_sent_is_a_400(
    app: InProcessGateway, place: str
) -> None:
    body = NESTED_PLACES[place].format(nested(1000))
    response = app.post("/v1/chat/completions", content=body.encode())
    assert response.status_code == 400
    assert_openai_answer(response)


# --- lone surrogates ----------------------------------------------------------------------


def chat_with(content: Any, **extra: Any) -> bytes:
    body = {"model": "nova-micro", "messages": [{"role": "user", "content": content}], **extra}
    return json.dumps(body).encode()  # ensure_ascii: a lone surrogate becomes "\ud800"


def test_lone_surrogates_in_chat_are_answered(app: InProcessGateway) -> None:
    for body in (
        chat_with("a\ud800b"),
        chat_with([{"type": "text", "text": "\udfff"}]),
        chat_with("hi", stop=["\ud800"]),
        chat_with("hi", stream=True, user="x\udc00y"),
    ):
        assert_openai_answer(app.post("/v1/chat/completions", content=body))


def test_a_lone_surrogate_in_user_does_not_jam_the_ledger(app: InProcessGateway) -> None:
    """The request's `user` becomes the record's `end_user`, and a record that cannot be
    written as UTF-8 once stopped the recorder for good. Refused at the door or recorded,
    the ledger must go on."""
    response = app.post("/v1/chat/completions", content=chat_with("hi", user="end-\ud800-user"))
    assert_openai_answer(response)
    assert app.ledger_rows() == app.billable
    assert app.post("/v1/chat/completions", content=chat_with("after")).status_code == 200
    assert app.ledger_rows() == app.billable


def test_lone_surrogates_in_embedding_inputs_are_answered(app: InProcessGateway) -> None:
    # A single string is refused by the schema already; a list of strings is not.
    body = json.dumps({"model": "titan-embed-text-v2", "input": ["a\ud800b"]}).encode()
    response = app.post("/v1/embeddings", content=body)
    assert_openai_answer(response)


# --- sizes --------------------------------------------------------------------------------


def test_thousands_of_messages(app: InProcessGateway) -> None:
    turns = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"} for i in range(3001)
    ]
    for stream in (False, True):
        body = json.dumps({"model": "nova-micro", "messages": turns, "stream": stream}).encode()
        response = app.post("/v1/chat/completions", content=body)
        assert_openai_answer(response)
        assert response.status_code == 200


def test_thousands_of_tiny_messages_in_one_turn(app: InProcessGateway) -> None:
    parts = [{"type": "text", "text": str(i)} for i in range(5000)]
    response = app.post("/v1/chat/completions", content=chat_with(parts))
    assert_openai_answer(response)


def test_the_most_embedding_inputs_and_one_more(app: InProcessGateway) -> None:
    for count, status in ((2048, 200), (2049, 400)):
        body = json.dumps({"model": "cohere-en", "input": [f"t{i}" for i in range(count)]})
        response = app.post("/v1/embeddings", content=body.encode())
        assert_openai_answer(response)
        assert response.status_code == status


def test_huge_strings(app: InProcessGateway) -> None:
    limit = app.config.server.max_body_bytes
    fits = chat_with("x" * (limit - 200))
    assert len(fits) <= limit
    assert app.post("/v1/chat/completions", content=fits).status_code == 200
    too_big = chat_with("x" * limit)
    response = app.post("/v1/chat/completions", content=too_big)
    assert response.status_code == 413
    assert_openai_answer(response)
    assert app.ledger_rows() == app.billable


def test_empty_and_whitespace_bodies(app: InProcessGateway) -> None:
    for path in ROUTES:
        for body in (b"", b" ", b"\n", b"null", b"[]", b"{}", b'""', b"0"):
            response = app.post(path, content=body)
            assert_openai_answer(response)
            assert response.status_code == 400
