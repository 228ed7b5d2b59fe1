"""Fuzz inputs from issue 19's review: NUL and long `user`, control characters in every
caller string, huge lists of unknown fields.

Every case must be answered in OpenAI's shape (never a 5xx) and leave exactly one usage
record, written: the ledger must never stall behind one of them. Budgets are bounded: a
fixed number of examples, each one request.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from gateway.app import create_app
from gateway.config import GatewayConfig
from gateway.usage.postgres import PostgresUsageStore
from tests.fullpath.conftest import API_KEY
from tests.fuzz.conftest import (
    FUZZ,
    FakeBedrock,
    InProcessGateway,
    assert_openai_answer,
    fuzz_config,
)

# C0 controls (NUL, tab, CR, LF, ESC), DEL, C1 controls, a bidi override, a lone surrogate.
CONTROLS = [chr(c) for c in (*range(0x00, 0x20), 0x7F, 0x85, 0x9B, 0x202E, 0xD800)]

control_text = st.one_of(
    st.lists(st.sampled_from(CONTROLS) | st.characters(), min_size=1, max_size=24).map("".join),
    st.sampled_from(["x\u0000", "\u001b[2J", "a\r\nb", "u" * 4000, "\u0000" * 300, "=cmd|x"]),
)

# Every string a caller chooses that can reach a ledger row, a log line or a header.
CALLER_STRINGS = ("user", "model", "stop", "content", "tool_name", "metadata", "request_id")


def _chat(field: str, text: str, stream: bool) -> tuple[dict[str, Any], dict[str, str]]:
    body: dict[str, Any] = {
        "model": "nova-micro",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
    }
    headers: dict[str, str] = {}
    if field == "user":
        body["user"] = text
    elif field == "model":
        body["model"] = text
    elif field == "stop":
        body["stop"] = [text]
    elif field == "content":
        body["messages"][0]["content"] = text
    elif field == "tool_name":
        body["tools"] = [{"type": "function", "function": {"name": text, "parameters": {}}}]
    elif field == "metadata":
        body["metadata"] = {text: text}
    else:
        # A header value cannot carry CR, LF or NUL on the wire (h11 refuses to send it):
        # the printable remainder, which may still be long.
        printable = "".join(c for c in text if c.isprintable() and c.isascii())
        headers["x-request-id"] = printable or "r"
    return body, headers


def _drained(app: InProcessGateway) -> None:
    # `ledger_rows` waits (bounded) for the recorder to write everything it holds.
    assert app.ledger_rows() == app.billable


@settings(FUZZ, max_examples=80)
@given(field=st.sampled_from(CALLER_STRINGS), text=control_text, stream=st.booleans())
def test_control_characters_in_every_caller_string(
    app: InProcessGateway, field: str, text: str, stream: bool
) -> None:
    body, headers = _chat(field, text, stream)
    response = app.post("/v1/chat/completions", content=json.dumps(body).encode(), headers=headers)
    assert_openai_answer(response)
    for name, value in response.headers.items():
        assert "\r" not in value and "\n" not in value and "\x00" not in value, name


@settings(FUZZ, max_examples=30)
@given(text=control_text)
def test_control_characters_in_the_embeddings_user(app: InProcessGateway, text: str) -> None:
    body = {"model": "titan-embed-text-v2", "input": ["a"], "user": text}
    assert_openai_answer(app.post("/v1/embeddings", content=json.dumps(body).encode()))


def test_nul_and_long_users_never_stall_the_ledger(app: InProcessGateway) -> None:
    # Issue 19, item 1: one such request jammed every record behind it.
    for user in ("x\u0000", "u" * 4000, "\u0000", "\u001b]0;title\u0007", "a\ud800"):
        for stream in (False, True):
            body = {"model": "nova-micro", "messages": [{"role": "user", "content": "hi"}]}
            response = app.post_json(
                "/v1/chat/completions", {**body, "user": user, "stream": stream}
            )
            assert_openai_answer(response)
        ok = {"model": "nova-micro", "messages": [{"role": "user", "content": "after"}]}
        assert app.post_json("/v1/chat/completions", ok).status_code == 200
    _drained(app)


def test_huge_lists_of_unknown_fields_are_answered_quickly(app: InProcessGateway) -> None:
    # 15,000 unknown fields once made a 705 KB response header; whatever the answer, it
    # comes quickly, in OpenAI's shape, and its headers stay small.
    for count in (1, 100, 15_000):
        body: dict[str, Any] = {
            "model": "nova-micro",
            "messages": [{"role": "user", "content": "hi"}],
            **{f"unknown_field_{i:05d}": i for i in range(count)},
        }
        started = time.monotonic()
        response = app.post_json("/v1/chat/completions", body)
        assert time.monotonic() - started < 10
        assert_openai_answer(response)
        assert sum(len(k) + len(v) for k, v in response.headers.items()) < 8192
    _drained(app)


# --- the same against the real PostgreSQL, which is what refused NUL and 4 KB values -------


class PostgresGateway(InProcessGateway):
    """The in-process gateway with its ledger in a PostgreSQL schema of its own."""

    def __init__(self, config: GatewayConfig, dsn: str, schema: str) -> None:
        self.config = config
        self.store = PostgresUsageStore(dsn, schema=schema)
        self.app = create_app(
            config, bedrock=FakeBedrock(), store=self.store, registry=CollectorRegistry()
        )
        self.billable = 0
        self.loop = asyncio.new_event_loop()
        self._lifespan = self.app.router.lifespan_context(self.app)
        self._run(self._lifespan.__aenter__())
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://127.0.0.1",
            headers={"authorization": f"Bearer {API_KEY}"},
        )

    def ledger_rows(self) -> int:
        recorder = self.app.state.gateway.recorder
        for _ in range(200):  # at most 10 s
            if recorder.depth == 0:
                break
            self._run(asyncio.sleep(0.05))
        assert recorder.depth == 0, f"{recorder.depth} usage records never reached the store"
        assert recorder.lost == 0 and recorder.dead_lettered == 0
        rows = self._run(self.store.query(group_by=[]))
        return int(rows[0]["requests"]) if rows else 0


@pytest.fixture(scope="module")
def pg_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessGateway]:
    dsn = os.environ.get("GATEWAY_TEST_POSTGRES_URL")
    if not dsn:
        pytest.skip("GATEWAY_TEST_POSTGRES_URL is not set")
    schema = f"fuzz_{uuid.uuid4().hex[:16]}"

    async def drop() -> None:
        conn = await asyncpg.connect(dsn, timeout=3)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    try:
        gateway = PostgresGateway(fuzz_config(tmp_path_factory.mktemp("pgfuzz")), dsn, schema)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL at GATEWAY_TEST_POSTGRES_URL unreachable: {exc}")
    try:
        yield gateway
    finally:
        gateway.close()
        asyncio.run(drop())


@pytest.mark.postgres
@settings(FUZZ, max_examples=40)
@given(field=st.sampled_from(CALLER_STRINGS), text=control_text, stream=st.booleans())
def test_postgres_ledger_takes_every_caller_string(
    pg_app: InProcessGateway, field: str, text: str, stream: bool
) -> None:
    body, headers = _chat(field, text, stream)
    response = pg_app.post(
        "/v1/chat/completions", content=json.dumps(body).encode(), headers=headers
    )
    assert_openai_answer(response)
    _drained(pg_app)  # every record stored, none set aside


@pytest.mark.postgres
def test_postgres_ledger_never_stalls_on_nul_or_long_users(pg_app: InProcessGateway) -> None:
    for user in ("x\u0000", "u" * 4000, "a\ud800"):
        body = {"model": "nova-micro", "messages": [{"role": "user", "content": "hi"}]}
        assert_openai_answer(pg_app.post_json("/v1/chat/completions", {**body, "user": user}))
    _drained(pg_app)


@pytest.fixture(scope="module")
def dropping_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessGateway]:
    config = fuzz_config(tmp_path_factory.mktemp("drop")).model_copy(
        update={"drop_unsupported_params": True}
    )
    gateway = InProcessGateway(config)
    try:
        yield gateway
    finally:
        gateway.close()


@settings(FUZZ, max_examples=25)
@given(
    count=st.sampled_from([1, 25, 2_000, 15_000]),
    name=st.sampled_from(["x", "unknown_field_with_a_rather_long_name_", "\u00e9\u202e", "a\nb"]),
)
def test_dropped_unknown_fields_keep_headers_small(
    dropping_app: InProcessGateway, count: int, name: str
) -> None:
    # With drop_unsupported_params, 15,000 unknown fields made a 705 KB
    # x-gateway-dropped-params header that broke the SDK while the call was billed.
    body: dict[str, Any] = {
        "model": "nova-micro",
        "messages": [{"role": "user", "content": "hi"}],
        **{f"{name}{i}": i for i in range(count)},
    }
    response = dropping_app.post_json("/v1/chat/completions", body)
    assert_openai_answer(response)
    assert response.status_code == 200
    dropped = response.headers.get("x-gateway-dropped-params", "")
    assert len(dropped) < 4096
    assert all(c.isprintable() for c in dropped)
