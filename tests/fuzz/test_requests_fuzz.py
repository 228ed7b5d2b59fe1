"""Property: whatever a client sends, the gateway answers in OpenAI's shape, never with a 5xx.

Chat and embedding bodies come from `tests.fuzz.strategies`: right in shape and odd in
detail, or odd throughout. After the examples, the ledger must hold one usage record per
request to a billable route, all of them written: an unstorable field would jam the
recorder without changing any answer.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import FUZZ, InProcessGateway, assert_openai_answer
from tests.fuzz.strategies import chat_requests, embedding_requests


def check_property(app: InProcessGateway, path: str, bodies: st.SearchStrategy[Any]) -> None:
    @FUZZ
    @given(body=bodies)
    def answers_in_openai_shape(body: Any) -> None:
        assert_openai_answer(app.post_json(path, body))

    before = app.billable
    answers_in_openai_shape()
    assert app.billable > before
    assert app.ledger_rows() == app.billable


def test_chat_requests_never_fail_on_our_side(app: InProcessGateway) -> None:
    check_property(app, "/v1/chat/completions", chat_requests())


def test_embedding_requests_never_fail_on_our_side(app: InProcessGateway) -> None:
    check_property(app, "/v1/embeddings", embedding_requests())
