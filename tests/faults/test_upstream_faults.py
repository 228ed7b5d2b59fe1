"""Bedrock misbehaving under concurrent load: throttling, 5xx, silence, broken streams.

Each case fires its load through `recovery`, which checks afterwards that the gateway's
tasks and connections are back to the baseline and that it still answers; then the ledger
is compared request by request with what the emulator reported.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest

from tests.faults.conftest import (
    BACKUP_ID,
    Launch,
    Outcome,
    by_request,
    chat,
    fire,
    metric,
    open_sockets,
    settle,
    tasks_of,
)
from tests.fullpath.conftest import RunningGateway, ledger

Recovery = Callable[[RunningGateway], AbstractContextManager[None]]

LOAD = 100  # requests per case, half of them streamed
CONCURRENCY = 50


def streamed(index: int) -> bool:
    return index % 2 == 1


def usage_of(index: int) -> dict[str, int]:
    """Distinct token counts per request, so a record swapped with another shows."""
    return {"inputTokens": 10 + index, "outputTokens": 1 + index % 7}


def assert_error_answer(
    outcome: Outcome, status: int, error_type: str, code: str, *, retryable: bool
) -> None:
    assert outcome.status == status, (outcome.request_id, outcome.body)
    error = outcome.error()
    assert (error["type"], error["code"]) == (error_type, code)
    # What the gateway itself would retry, it tells the client to retry too, once its own
    # attempts are spent; the rest would fail the same way again.
    if retryable:
        assert int(outcome.headers["retry-after"]) >= 1
    else:
        assert "retry-after" not in outcome.headers


def final_error_event(outcome: Outcome) -> dict[str, Any]:
    """A stream that began and then failed: 200, content first, one error event last."""
    assert outcome.status == 200, outcome.body
    events = outcome.events()
    assert "[DONE]" not in events
    first = json.loads(events[0])
    assert first["choices"][0]["delta"]["role"] == "assistant"
    final = json.loads(events[-1])
    assert set(final) == {"error"} and set(final["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = final["error"]
    return error


def test_throttling_storm_is_429_with_retry_after(launch: Launch, recovery: Recovery) -> None:
    gateway = launch(max_attempts=2)
    bodies = [chat(stream=streamed(i), error="ThrottlingException") for i in range(LOAD)]
    with recovery(gateway):
        outcomes = fire(gateway, bodies, concurrency=CONCURRENCY)
    for outcome in outcomes:
        assert_error_answer(outcome, 429, "rate_limit_error", "rate_limit_exceeded", retryable=True)
    assert metric(gateway, "gateway_upstream_errors_total", error="ThrottlingException") == LOAD * 2
    rows = by_request(ledger(gateway))
    assert len(rows) == LOAD
    for index in range(LOAD):
        row = rows[f"fault-{index}"]
        assert (row["status"], row["error_type"]) == (429, "ThrottlingException")
        assert (row["input_tokens"], row["output_tokens"], row["estimated"]) == (0, 0, 0)
        assert row["stream"] == streamed(index)


def test_throttling_storm_with_a_fallback_is_served(launch: Launch, recovery: Recovery) -> None:
    gateway = launch()
    bodies = [
        chat(
            f"request {i}",
            model="primary",
            stream=streamed(i),
            fail_times=1,
            key=f"storm-fallback-{i}",
            usage=usage_of(i),
        )
        for i in range(LOAD)
    ]
    with recovery(gateway):
        outcomes = fire(gateway, bodies, concurrency=CONCURRENCY)
    for index, outcome in enumerate(outcomes):
        assert outcome.status == 200, outcome.body
        assert outcome.headers["x-gateway-model"] == BACKUP_ID
        if streamed(index):
            assert outcome.events()[-1] == "[DONE]"
        else:
            assert json.loads(outcome.body)["usage"]["prompt_tokens"] == 10 + index
    throttled = metric(
        gateway, "gateway_upstream_errors_total", model="primary", error="ThrottlingException"
    )
    assert throttled == LOAD  # (a transient ConnectionError, retried, may come on top)
    rows = by_request(ledger(gateway))
    assert len(rows) == LOAD
    for index in range(LOAD):
        row = rows[f"fault-{index}"]
        assert (row["status"], row["error_type"], row["estimated"]) == (200, None, 0)
        assert (row["model"], row["bedrock_model_id"]) == ("backup", BACKUP_ID)
        expected = usage_of(index)
        assert (row["input_tokens"], row["output_tokens"]) == (
            expected["inputTokens"],
            expected["outputTokens"],
        )


# (Bedrock error, status, OpenAI type, code, retried by the gateway)
FIVE_HUNDREDS = [
    ("InternalServerException", 502, "server_error", "upstream_server_error", False),
    ("ModelErrorException", 502, "server_error", "model_error", False),
    ("ServiceUnavailableException", 503, "server_error", "service_unavailable", True),
    ("ModelNotReadyException", 503, "server_error", "model_not_ready", True),
]


def test_upstream_5xx_under_load(launch: Launch, recovery: Recovery) -> None:
    gateway = launch(max_attempts=2)
    cases = [FIVE_HUNDREDS[i % len(FIVE_HUNDREDS)] for i in range(LOAD)]
    bodies = [chat(stream=streamed(i), error=case[0]) for i, case in enumerate(cases)]
    with recovery(gateway):
        outcomes = fire(gateway, bodies, concurrency=CONCURRENCY)
    for outcome, (_, status, error_type, code, retried) in zip(outcomes, cases, strict=True):
        assert_error_answer(outcome, status, error_type, code, retryable=retried)
    for name, _, _, _, retried in FIVE_HUNDREDS:
        attempts = metric(gateway, "gateway_upstream_errors_total", error=name)
        assert attempts == LOAD // len(FIVE_HUNDREDS) * (2 if retried else 1), name
    rows = by_request(ledger(gateway))
    assert len(rows) == LOAD
    for index, (name, status, _, _, _) in enumerate(cases):
        row = rows[f"fault-{index}"]
        assert (row["status"], row["error_type"], row["input_tokens"]) == (status, name, 0)


def test_silent_models_time_out_and_are_hung_up_on(launch: Launch, recovery: Recovery) -> None:
    gateway = launch()
    # A first token a minute away: if the gateway kept the upstream call after its 0.3 s
    # deadline, the emulator would keep the connection open far past the leak check.
    bodies = [
        chat(model="deadline", stream=streamed(i), first_token_delay_ms=60_000)
        for i in range(LOAD // 2)
    ]
    with recovery(gateway):
        outcomes = fire(gateway, bodies, concurrency=CONCURRENCY)
    for outcome in outcomes:
        assert_error_answer(outcome, 504, "server_error", "first_token_timeout", retryable=False)
    rows = by_request(ledger(gateway))
    assert len(rows) == LOAD // 2
    assert {(r["status"], r["error_type"], r["input_tokens"]) for r in rows.values()} == {
        (504, "FirstTokenTimeout", 0)
    }


@pytest.fixture
def black_hole() -> Iterator[int]:
    """The port of a Bedrock that takes connections and never says a word.

    The kernel completes the handshakes (up to the backlog) and buffers the requests;
    nothing ever reads them or answers.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        yield int(sock.getsockname()[1])


def test_a_bedrock_that_never_answers_meets_the_first_token_deadline(
    launch: Launch, black_hole: int
) -> None:
    # A read timeout of 10 s, so that a gateway waiting for it instead of its 0.3 s
    # first-token deadline fails this test in seconds rather than hanging it.
    gateway = launch(
        bedrock={
            "region": "us-east-1",
            "endpoint_url": f"http://127.0.0.1:{black_hole}",
            "read_timeout_s": 10,
            "retries": {"mode": "standard", "max_attempts": 1},
        }
    )
    bodies = [chat("anyone there?", model="deadline", stream=streamed(i)) for i in range(20)]
    tasks = tasks_of(gateway)
    started = time.monotonic()
    outcomes = fire(gateway, bodies, concurrency=20)
    assert time.monotonic() - started < 5
    for outcome in outcomes:
        assert_error_answer(outcome, 504, "server_error", "first_token_timeout", retryable=False)
    # Every abandoned call was hung up on, not left waiting in the pool.
    assert settle(lambda: open_sockets(remote_port=black_hole), 0) == 0
    assert settle(lambda: tasks_of(gateway), tasks) <= tasks
    rows = by_request(ledger(gateway))
    assert {(r["status"], r["error_type"]) for r in rows.values()} == {(504, "FirstTokenTimeout")}


STREAM_ERRORS = [
    (
        "modelStreamErrorException",
        "ModelStreamErrorException",
        "server_error",
        "model_stream_error",
    ),
    ("throttlingException", "ThrottlingException", "rate_limit_error", "rate_limit_exceeded"),
    ("internalServerException", "InternalServerException", "server_error", "upstream_server_error"),
]


def test_exception_frames_mid_stream(launch: Launch, recovery: Recovery) -> None:
    gateway = launch(max_attempts=3)
    reply = "alpha beta gamma delta epsilon zeta eta theta"
    cases = [STREAM_ERRORS[i % len(STREAM_ERRORS)] for i in range(LOAD)]
    bodies = [
        chat(stream=True, reply=reply, stream_error={"type": case[0], "after_events": 4})
        for case in cases
    ]
    with recovery(gateway):
        outcomes = fire(gateway, bodies, concurrency=CONCURRENCY)
    for outcome, (_, _, error_type, code) in zip(outcomes, cases, strict=True):
        error = final_error_event(outcome)
        assert (error["type"], error["code"]) == (error_type, code)
        text = "".join(
            json.loads(event)["choices"][0]["delta"].get("content") or ""
            for event in outcome.events()[:-1]
        )
        assert text == "alpha beta gamma"  # the three words before the frame
    # Content had gone out: no retry, whatever the error. (Only the injected errors are
    # counted: a pooled connection the emulator closed as it was reused is a transient
    # ConnectionError, retried before the first byte, and may happen on a busy machine.)
    injected = {name for _, name, _, _ in STREAM_ERRORS}
    assert sum(metric(gateway, "gateway_upstream_errors_total", error=e) for e in injected) == LOAD
    rows = by_request(ledger(gateway))
    assert len(rows) == LOAD
    for index, (_, name, _, _) in enumerate(cases):
        row = rows[f"fault-{index}"]
        assert (row["status"], row["error_type"]) == (200, name)
        # The metadata event with Bedrock's numbers never came: estimated, and flagged.
        assert row["estimated"] == 1
        assert row["input_tokens"] >= 1 and row["output_tokens"] >= 1


def test_upstream_connection_reset_mid_stream(launch: Launch, recovery: Recovery) -> None:
    gateway = launch()
    reply = "one two three four five six"
    bodies = [chat(stream=True, reply=reply, disconnect_after=4) for _ in range(LOAD)]
    with recovery(gateway):
        outcomes = fire(gateway, bodies, concurrency=CONCURRENCY)
    for outcome in outcomes:
        error = final_error_event(outcome)
        assert (error["type"], error["code"]) == ("server_error", "upstream_unreachable")
    rows = by_request(ledger(gateway))
    assert len(rows) == LOAD
    for row in rows.values():
        assert (row["status"], row["error_type"], row["estimated"]) == (200, "ConnectionError", 1)


def test_upstream_connection_reset_mid_body(launch: Launch, recovery: Recovery) -> None:
    gateway = launch()
    bodies = [chat(reply="one two three", disconnect_after=0) for _ in range(LOAD // 2)]
    with recovery(gateway):
        outcomes = fire(gateway, bodies, concurrency=CONCURRENCY)
    for outcome in outcomes:
        assert_error_answer(outcome, 502, "server_error", "upstream_unreachable", retryable=True)
    rows = by_request(ledger(gateway))
    assert len(rows) == LOAD // 2
    for row in rows.values():
        assert (row["status"], row["error_type"], row["input_tokens"]) == (
            502,
            "ConnectionError",
            0,
        )


@pytest.mark.parametrize("stream", [False, True])
def test_slow_answers_from_a_paced_emulator_are_exact(
    launch: Launch, recovery: Recovery, stream: bool
) -> None:
    """The control case: the same harness, no fault, paced answers: every number exact."""
    gateway = launch()
    bodies = [
        chat(f"paced {i}", stream=stream, delay_ms=5, usage=usage_of(i)) for i in range(LOAD // 2)
    ]
    with recovery(gateway):
        outcomes = fire(gateway, bodies, concurrency=CONCURRENCY)
    assert all(outcome.status == 200 for outcome in outcomes)
    rows = by_request(ledger(gateway))
    assert len(rows) == LOAD // 2
    for index in range(LOAD // 2):
        row = rows[f"fault-{index}"]
        expected = usage_of(index)
        assert (row["input_tokens"], row["output_tokens"], row["estimated"]) == (
            expected["inputTokens"],
            expected["outputTokens"],
            0,
        )
