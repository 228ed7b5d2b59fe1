"""Reliability through the whole path: retries, fallbacks, first-token timeouts, limits, overload.

Every expectation is about behaviour a client can see (statuses, headers, which model
answered, the usage ledger, `/metrics`), not about speed. Where a count of upstream attempts
matters, the emulator's own `fail_times` counter is the witness: a second gateway that never
retries ("the probe") asks the emulator how many scripted failures a key has left.
"""

from __future__ import annotations

import concurrent.futures
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.fullpath.conftest import (
    API_KEY,
    OTHER_KEY,
    RESTRICTED_KEY,
    GatewayFactory,
    RunningGateway,
    base_config,
    ledger,
    script,
)
from tests.servers import ServerThread, free_port

PRIMARY_ID = "anthropic.claude-3-haiku-20240307-v1:0"
BACKUP_ID = "amazon.nova-lite-v1:0"
SLOW_ID = "meta.llama3-1-8b-instruct-v1:0"
PATIENT_ID = "mistral.mistral-small-2402-v1:0"

# First-token deadlines: short enough to keep the suite quick, and far enough from the
# scripted delays (3x or more) that a loaded CI machine cannot land on the wrong side.
SLOW_TTFT_S = 0.3
LATE_FIRST_TOKEN_MS = 1000

EXTRA_MODELS: list[dict[str, Any]] = [
    {"name": "primary", "bedrock_id": PRIMARY_ID, "fallbacks": ["backup"]},
    {"name": "backup", "bedrock_id": BACKUP_ID},
    {
        "name": "slow-primary",
        "bedrock_id": SLOW_ID,
        "ttft_timeout_s": SLOW_TTFT_S,
        "fallbacks": ["backup"],
    },
    {"name": "slow-alone", "bedrock_id": SLOW_ID, "ttft_timeout_s": SLOW_TTFT_S},
    {"name": "patient", "bedrock_id": PATIENT_ID, "ttft_timeout_s": 1.5},
    {"name": "to-broken", "bedrock_id": PRIMARY_ID, "fallbacks": ["broken-model"]},
    {"name": "to-slow", "bedrock_id": PRIMARY_ID, "fallbacks": ["slow-alone"]},
]


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def fresh_key() -> str:
    """A `fail_times` key of this test alone (the emulator outlives every test)."""
    return f"rel-{uuid.uuid4().hex}"


def models() -> list[dict[str, Any]]:
    shared: list[dict[str, Any]] = base_config("http://unused", Path("unused"))["models"]
    return [*shared, *EXTRA_MODELS]


def bedrock(emulator: ServerThread, max_attempts: int) -> dict[str, Any]:
    return {
        "region": "us-east-1",
        "endpoint_url": emulator.url,
        "retries": {"mode": "standard", "max_attempts": max_attempts},
    }


def start(
    start_gateway: GatewayFactory,
    emulator: ServerThread,
    *,
    max_attempts: int = 1,
    **overrides: Any,
) -> RunningGateway:
    return start_gateway(bedrock=bedrock(emulator, max_attempts), models=models(), **overrides)


Clients = Callable[..., openai.OpenAI]


@pytest.fixture
def clients() -> Iterator[Clients]:
    """`clients(gateway, key=API_KEY, **options)`: SDK clients closed at the end of the test,
    so that no pooled socket is left for the garbage collector to complain about."""
    made: list[openai.OpenAI] = []

    def make(gateway: RunningGateway, key: str = API_KEY, **options: Any) -> openai.OpenAI:
        client = gateway.client(key, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def samples(gateway: RunningGateway, name: str, **labels: str) -> float:
    """The sum of `name`'s samples on `/metrics` whose labels include `labels`."""
    with gateway.http() as http:
        text = http.get("/metrics").text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def failures_left(probe: RunningGateway, key: str, fail_times: int) -> int:
    """How many of `key`'s scripted failures the emulator still has, counted by a gateway
    that makes exactly one attempt per request (each probe request spends one)."""
    message = user(script(fail_times=fail_times, key=key))
    with probe.client() as client:
        for seen in range(fail_times + 1):
            try:
                client.chat.completions.create(model="nova-micro", messages=message)
            except openai.RateLimitError:
                continue
            return seen
    raise AssertionError(f"key {key} still failing after {fail_times + 1} probes")


def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


def stream_text(stream: Iterator[Any]) -> str:
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


# --- retries ------------------------------------------------------------------------------


def test_throttled_twice_then_answered_within_three_attempts(
    start_gateway: GatewayFactory, emulator: ServerThread, clients: Clients
) -> None:
    gateway = start(start_gateway, emulator, max_attempts=3)
    probe = start(start_gateway, emulator, max_attempts=1)
    key = fresh_key()
    completion = clients(gateway).chat.completions.create(
        model="nova-micro", messages=user(script("hello", fail_times=2, key=key))
    )
    assert completion.choices[0].message.content == "You said: hello"
    assert samples(gateway, "gateway_upstream_errors_total", error="ThrottlingException") == 2
    assert failures_left(probe, key, 2) == 0


def test_attempts_per_request_stop_at_max_attempts(
    start_gateway: GatewayFactory, emulator: ServerThread, clients: Clients
) -> None:
    gateway = start(start_gateway, emulator, max_attempts=3)
    probe = start(start_gateway, emulator, max_attempts=1)
    key = fresh_key()
    with pytest.raises(openai.RateLimitError) as info:
        clients(gateway).chat.completions.create(
            model="nova-micro", messages=user(script(fail_times=5, key=key))
        )
    assert int(info.value.response.headers["retry-after"]) >= 1
    # Five failures scripted, three spent by the gateway: two left for the probe.
    assert failures_left(probe, key, 5) == 2


def test_one_attempt_gives_the_client_429_with_retry_after(
    start_gateway: GatewayFactory, emulator: ServerThread, clients: Clients
) -> None:
    gateway = start(start_gateway, emulator, max_attempts=1)
    key = fresh_key()
    client = clients(gateway)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(
            model="nova-micro", messages=user(script(fail_times=1, key=key))
        )
    assert info.value.status_code == 429
    assert int(info.value.response.headers["retry-after"]) >= 1
    error = error_of(info.value)
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    # The one failure was spent by that single attempt: the same request now succeeds.
    client.chat.completions.create(model="nova-micro", messages=user(script(fail_times=1, key=key)))


def test_validation_errors_are_never_retried(
    start_gateway: GatewayFactory, emulator: ServerThread, clients: Clients
) -> None:
    gateway = start(start_gateway, emulator, max_attempts=3)
    key = fresh_key()
    client = clients(gateway)
    message = user(script(fail_times=2, key=key, error="ValidationException"))
    # Had the first request been retried, its second attempt would have spent the second
    # failure and its third succeeded; each request spends exactly one failure instead.
    for _ in range(2):
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="nova-micro", messages=message)
    client.chat.completions.create(model="nova-micro", messages=message)
    assert samples(gateway, "gateway_upstream_errors_total", error="ValidationException") == 2


def test_validation_errors_do_not_fall_back(
    start_gateway: GatewayFactory, emulator: ServerThread, clients: Clients
) -> None:
    gateway = start(start_gateway, emulator, max_attempts=3)
    key = fresh_key()
    with pytest.raises(openai.BadRequestError):
        clients(gateway).chat.completions.create(
            model="primary",
            messages=user(script(fail_times=1, key=key, error="ValidationException")),
        )
    # `backup` would have answered (the one failure was spent): it was never called.
    assert samples(gateway, "gateway_requests_total", model="backup") == 0


@pytest.mark.parametrize("stream", [False, True])
def test_a_throttling_storm_gives_up_within_seconds(
    start_gateway: GatewayFactory, emulator: ServerThread, clients: Clients, stream: bool
) -> None:
    gateway = start(start_gateway, emulator, max_attempts=20)
    client = clients(gateway, timeout=30)

    def one() -> float:
        started = time.monotonic()
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(
                model="nova-micro",
                messages=user(script(error="ThrottlingException")),
                stream=stream,
            )
        assert int(info.value.response.headers["retry-after"]) >= 1
        return time.monotonic() - started

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        durations = list(pool.map(lambda _: one(), range(8)))
    # The backoff budget is 2 s per request whatever max_attempts says; botocore's own
    # retries would have stacked tens of seconds on top.
    assert max(durations) < 8, durations
    attempts = samples(gateway, "gateway_upstream_errors_total", error="ThrottlingException")
    assert 8 * 2 <= attempts <= 8 * 20


# --- fallbacks ----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_throttled_model_falls_back(
    start_gateway: GatewayFactory, emulator: ServerThread, clients: Clients, stream: bool
) -> None:
    gateway = start(start_gateway, emulator, max_attempts=2)
    key = fresh_key()
    raw = clients(gateway).chat.completions.with_raw_response.create(
        model="primary", messages=user(script("fall back", fail_times=2, key=key)), stream=stream
    )
    assert raw.headers["x-gateway-model"] == BACKUP_ID
    parsed = raw.parse()
    if stream:
        assert stream_text(parsed) == "You said: fall back"
    else:
        assert parsed.choices[0].message.content == "You said: fall back"
        assert parsed.model == "primary"  # the name the client sent

    assert (
        samples(
            gateway, "gateway_upstream_errors_total", model="primary", error="ThrottlingException"
        )
        == 2
    )
    assert samples(gateway, "gateway_upstream_errors_total", model="backup") == 0
    assert samples(gateway, "gateway_requests_total", model="backup", status="200") == 1
    assert samples(gateway, "gateway_requests_total", model="primary") == 0
    (record,) = ledger(gateway)
    assert (record["model"], record["bedrock_model_id"]) == ("backup", BACKUP_ID)
    assert (record["status"], record["error_type"], record["stream"]) == (200, None, int(stream))
    assert record["output_tokens"] == 4 and record["estimated"] == 0


@pytest.mark.parametrize(
    ("model", "directive", "status", "code"),
    [
        # primary throttled, backup throttled: the client is told to come back later.
        ("primary", {"fail_times": 10}, 429, "rate_limit_exceeded"),
        # primary throttled, then a fallback Bedrock does not know: that last error wins.
        ("to-broken", {"fail_times": 1}, 400, "invalid_request"),
        # primary throttled, then a fallback whose first token is late.
        (
            "to-slow",
            {"fail_times": 1, "first_token_delay_ms": LATE_FIRST_TOKEN_MS},
            504,
            "first_token_timeout",
        ),
    ],
)
def test_when_every_fallback_fails_the_last_error_is_answered(
    start_gateway: GatewayFactory,
    emulator: ServerThread,
    clients: Clients,
    model: str,
    directive: dict[str, Any],
    status: int,
    code: str,
) -> None:
    gateway = start(start_gateway, emulator)
    with pytest.raises(openai.APIStatusError) as info:
        clients(gateway).chat.completions.create(
            model=model, messages=user(script(key=fresh_key(), **directive)), stream=True
        )
    assert info.value.status_code == status
    assert error_of(info.value)["code"] == code
    assert ("retry-after" in info.value.response.headers) == (status == 429)
    (record,) = ledger(gateway)
    assert record["status"] == status


# --- first-token timeouts -----------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_late_first_token_falls_back_to_the_next_model(
    start_gateway: GatewayFactory, emulator: ServerThread, clients: Clients, stream: bool
) -> None:
    gateway = start(start_gateway, emulator)
    raw = clients(gateway).chat.completions.with_raw_response.create(
        model="slow-primary",
        messages=user(script("late", first_token_delay_ms=LATE_FIRST_TOKEN_MS)),
        stream=stream,
    )
    # `backup` has no deadline of its own, so it may take as long as the script says.
    assert raw.headers["x-gateway-model"] == BACKUP_ID
    parsed = raw.parse()
    text = stream_text(parsed) if stream else parsed.choices[0].message.content
    assert text == "You said: late"
    assert (
        samples(
            gateway,
            "gateway_upstream_errors_total",
            model="slow-primary",
            error="FirstTokenTimeout",
        )
        == 1
    )
    (record,) = ledger(gateway)
    assert (record["status"], record["bedrock_model_id"]) == (200, BACKUP_ID)


@pytest.mark.parametrize("stream", [False, True])
def test_late_first_token_without_fallback_is_504(
    start_gateway: GatewayFactory, emulator: ServerThread, clients: Clients, stream: bool
) -> None:
    gateway = start(start_gateway, emulator)
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        clients(gateway).chat.completions.create(
            model="slow-alone",
            messages=user(script(first_token_delay_ms=LATE_FIRST_TOKEN_MS * 5)),
            stream=stream,
        )
    # The gateway gave up at its deadline instead of waiting for the scripted 5 s.
    assert time.monotonic() - started < LATE_FIRST_TOKEN_MS * 5 / 1000
    assert info.value.status_code == 504
    error = error_of(info.value)
    assert (error["type"], error["code"]) == ("server_error", "first_token_timeout")
    (record,) = ledger(gateway)
    assert (record["status"], record["error_type"]) == (504, "FirstTokenTimeout")


def test_the_deadline_covers_the_first_token_only(
    start_gateway: GatewayFactory, emulator: ServerThread, clients: Clients
) -> None:
    gateway = start(start_gateway, emulator)
    words = " ".join(f"w{i}" for i in range(20))
    # 20 words 100 ms apart: the whole answer takes 2 s, past the 1.5 s deadline, but the
    # first word comes after 100 ms.
    stream = clients(gateway).chat.completions.create(
        model="patient", messages=user(script(reply=words, delay_ms=100)), stream=True
    )
    assert stream_text(stream) == words


# --- exception frames before any content ----------------------------------------------------


def test_an_early_throttling_frame_is_retried_then_answered_as_429(
    start_gateway: GatewayFactory, emulator: ServerThread
) -> None:
    gateway = start(start_gateway, emulator, max_attempts=2)
    directive = {"stream_error": {"type": "throttlingException", "after_events": 1}}
    with gateway.http() as http:
        response = http.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {API_KEY}"},
            json={"model": "nova-micro", "messages": user(script(**directive)), "stream": True},
        )
    # Not a 200 with an error event: nothing had been sent when the frame came.
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert samples(gateway, "gateway_upstream_errors_total", error="ThrottlingException") == 2


def test_an_early_model_stream_error_is_a_502_without_retry(
    start_gateway: GatewayFactory, emulator: ServerThread, clients: Clients
) -> None:
    gateway = start(start_gateway, emulator, max_attempts=3)
    directive = {"stream_error": {"type": "modelStreamErrorException", "after_events": 1}}
    with pytest.raises(openai.InternalServerError) as info:
        clients(gateway).chat.completions.create(
            model="primary", messages=user(script(**directive)), stream=True
        )
    assert info.value.status_code == 502
    assert error_of(info.value)["code"] == "model_stream_error"
    assert samples(gateway, "gateway_upstream_errors_total", error="ModelStreamErrorException") == 1
    (record,) = ledger(gateway)
    assert (record["status"], record["error_type"]) == (502, "ModelStreamErrorException")


# --- limits -------------------------------------------------------------------------------


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def limits(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The `limits` section: this process's counters, or a Redis shared by a fleet (under a
    key prefix of this test's own, deleted afterwards)."""
    if request.param == "memory":
        yield {"store": "memory"}
        return
    url = os.environ.get("GATEWAY_TEST_REDIS_URL")
    if not url:
        pytest.skip("set GATEWAY_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/15) to run")
    prefix = f"bgw-test-{uuid.uuid4().hex}:"
    yield {"store": url, "redis_prefix": prefix}
    with redis.Redis.from_url(url) as client:
        keys = list(client.scan_iter(match=prefix + "*", count=100))
        if keys:
            client.delete(*keys)


def auth(keys: dict[str, dict[str, Any]], teams: dict[str, Any] | None = None) -> dict[str, Any]:
    """The test keys of `base_config`, with limits added by key id."""
    section: dict[str, Any] = base_config("http://unused", Path("unused"))["auth"]
    for entry in section["keys"]:
        entry.update(keys.get(entry["id"], {}))
    if teams:
        section["teams"] = teams
    return section


def wait_until_counted(gateway: RunningGateway, requests: int) -> None:
    """Wait (bounded) until `requests` chat requests are finished and counted.

    Limits are charged right after the response has gone out, on their own task: a client
    that fires its next request at once may otherwise be admitted before that lands.
    """
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if samples(gateway, "gateway_requests_total") >= requests:
            time.sleep(0.05)
            return
        time.sleep(0.02)
    raise AssertionError(f"{requests} requests were not counted within 5 s")


def test_key_rpm_is_a_429_naming_the_limit(
    start_gateway: GatewayFactory, emulator: ServerThread, clients: Clients, limits: dict[str, Any]
) -> None:
    gateway = start(start_gateway, emulator, auth=auth({"app1": {"rpm": 2}}), limits=limits)
    client = clients(gateway)
    for _ in range(2):
        client.chat.completions.create(model="nova-micro", messages=user("hi"))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="nova-micro", messages=user("hi"))
    # The sliding window frees a slot within the next two minutes at the latest.
    assert 1 <= int(info.value.response.headers["retry-after"]) <= 120
    error = error_of(info.value)
    assert error["code"] == "rpm_exceeded"
    assert "key 'app1'" in error["message"] and "2 requests per minute" in error["message"]
    # Another key is not affected.
    clients(gateway, OTHER_KEY).chat.completions.create(model="nova-micro", messages=user("hi"))
    records = ledger(gateway)
    refused = [r for r in records if r["status"] == 429]
    assert len(refused) == 1
    assert refused[0]["error_type"] == "rpm_exceeded" and refused[0]["input_tokens"] == 0


def test_team_rpm_is_shared_by_its_keys(
    start_gateway: GatewayFactory, emulator: ServerThread, clients: Clients, limits: dict[str, Any]
) -> None:
    gateway = start(
        start_gateway, emulator, auth=auth({}, teams={"ads": {"rpm": 3}}), limits=limits
    )
    bob, restricted = clients(gateway, OTHER_KEY), clients(gateway, RESTRICTED_KEY)
    bob.chat.completions.create(model="nova-micro", messages=user("1"))
    restricted.chat.completions.create(model="nova-micro", messages=user("2"))
    bob.chat.completions.create(model="nova-micro", messages=user("3"))
    for client in (bob, restricted):
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model="nova-micro", messages=user("4"))
        message = error_of(info.value)["message"]
        assert "team 'ads'" in message and "3 requests per minute" in message
    # Team `search` has no limit of its own.
    clients(gateway, API_KEY).chat.completions.create(model="nova-micro", messages=user("5"))


def test_tpm_counts_the_tokens_bedrock_reported(
    start_gateway: GatewayFactory, emulator: ServerThread, clients: Clients, limits: dict[str, Any]
) -> None:
    gateway = start(start_gateway, emulator, auth=auth({"app1": {"tpm": 100}}), limits=limits)
    client = clients(gateway)
    # 60 tokens used: the window still has room.
    client.chat.completions.create(
        model="nova-micro", messages=user(script(usage={"inputTokens": 50, "outputTokens": 10}))
    )
    wait_until_counted(gateway, 1)
    # 60 + 70 = 130: this one is served (its size was unknown before Bedrock answered) ...
    client.chat.completions.create(
        model="nova-micro", messages=user(script(usage={"inputTokens": 60, "outputTokens": 10}))
    )
    wait_until_counted(gateway, 2)
    # ... and the next one waits.
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="nova-micro", messages=user("more"))
    error = error_of(info.value)
    assert error["code"] == "tpm_exceeded" and "100 tokens per minute" in error["message"]
    assert int(info.value.response.headers["retry-after"]) >= 1


PRICED_USAGE = {"inputTokens": 1000, "outputTokens": 1000}  # $0.003 + $0.015 on claude-3-5-sonnet


def test_budget_is_enforced_after_priced_requests(
    start_gateway: GatewayFactory, emulator: ServerThread, clients: Clients
) -> None:
    gateway = start(start_gateway, emulator, auth=auth({"app1": {"budget_usd_monthly": "0.01"}}))
    client = clients(gateway)
    client.chat.completions.create(
        model="claude-3-5-sonnet", messages=user(script(usage=PRICED_USAGE))
    )
    wait_until_counted(gateway, 1)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="claude-3-5-sonnet", messages=user("again"))
    error = error_of(info.value)
    assert error["code"] == "budget_exceeded"
    assert "key 'app1'" in error["message"] and "$0.02 spent of $0.01" in error["message"]
    assert int(info.value.response.headers["retry-after"]) >= 1


def test_budget_is_read_from_the_usage_ledger(
    start_gateway: GatewayFactory, emulator: ServerThread, clients: Clients
) -> None:
    first = start(start_gateway, emulator)
    clients(first).chat.completions.create(
        model="claude-3-5-sonnet", messages=user(script(usage=PRICED_USAGE))
    )
    (record,) = ledger(first)
    assert record["cost_e10"] == 180_000_000  # $0.018 in units of 1e-10 USD

    # A new gateway process on the same ledger: it has charged nothing itself.
    tight = start(start_gateway, emulator, auth=auth({"app1": {"budget_usd_monthly": "0.01"}}))
    with pytest.raises(openai.RateLimitError) as info:
        clients(tight).chat.completions.create(model="nova-micro", messages=user("hi"))
    assert error_of(info.value)["code"] == "budget_exceeded"
    tight.server.stop()

    roomy = start(start_gateway, emulator, auth=auth({"app1": {"budget_usd_monthly": "1"}}))
    clients(roomy).chat.completions.create(model="nova-micro", messages=user("hi"))


def test_unreachable_redis_fails_open_and_is_counted(
    start_gateway: GatewayFactory, emulator: ServerThread, clients: Clients
) -> None:
    gateway = start(
        start_gateway,
        emulator,
        auth=auth({"app1": {"rpm": 1}}),
        limits={"store": f"redis://127.0.0.1:{free_port()}/0", "redis_timeout_s": 0.2},
    )
    client = clients(gateway)
    for _ in range(3):  # rpm 1, unenforceable: every request is served
        client.chat.completions.create(model="nova-micro", messages=user("hi"))
    assert samples(gateway, "gateway_limits_store_errors_total", store="counters") == 3
    # A key without limits never touches the store.
    clients(gateway, OTHER_KEY).chat.completions.create(model="nova-micro", messages=user("hi"))
    assert samples(gateway, "gateway_limits_store_errors_total") == 3


def test_unreachable_redis_fails_closed_when_asked(
    start_gateway: GatewayFactory, emulator: ServerThread, clients: Clients
) -> None:
    gateway = start(
        start_gateway,
        emulator,
        auth=auth({"app1": {"rpm": 1}}),
        limits={
            "store": f"redis://127.0.0.1:{free_port()}/0",
            "redis_timeout_s": 0.2,
            "fail_open": False,
        },
    )
    with pytest.raises(openai.InternalServerError) as info:
        clients(gateway).chat.completions.create(model="nova-micro", messages=user("hi"))
    assert info.value.status_code == 503
    assert int(info.value.response.headers["retry-after"]) >= 1
    assert error_of(info.value)["code"] == "overloaded"
    clients(gateway, OTHER_KEY).chat.completions.create(model="nova-micro", messages=user("hi"))
    (refused, served) = ledger(gateway)
    assert (refused["status"], refused["key_id"], refused["input_tokens"]) == (503, "app1", 0)
    assert (served["status"], served["key_id"]) == (200, "app2")


# --- overload -----------------------------------------------------------------------------


def test_requests_over_the_concurrency_limit_get_a_fast_503(
    start_gateway: GatewayFactory, emulator: ServerThread, clients: Clients
) -> None:
    gateway = start(start_gateway, emulator, server={"max_concurrent_requests": 2})
    slow = user(script("slow", first_token_delay_ms=2500))

    def call(messages: list[Any]) -> Any:
        return clients(gateway, timeout=30).chat.completions.create(
            model="nova-micro", messages=messages
        )

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        admitted = [pool.submit(call, slow) for _ in range(2)]
        deadline = time.monotonic() + 5
        while samples(gateway, "gateway_inflight_requests", route="/v1/chat/completions") < 2:
            assert time.monotonic() < deadline, "the slow requests never started"
            time.sleep(0.02)
        extras = [pool.submit(call, user("extra")) for _ in range(3)]
        for extra in concurrent.futures.as_completed(extras, timeout=10):
            with pytest.raises(openai.InternalServerError) as info:
                extra.result()
            assert info.value.status_code == 503
            assert int(info.value.response.headers["retry-after"]) >= 1
            assert error_of(info.value)["code"] == "overloaded"
        # Refused while the admitted ones were still waiting for their answer.
        assert not any(future.done() for future in admitted)
        for future in admitted:
            assert future.result(timeout=20).choices[0].message.content == "You said: slow"
    # The slots are free again.
    call(user("after"))
    records = ledger(gateway)
    assert sorted(r["status"] for r in records) == [200, 200, 200, 503, 503, 503]
    assert {r["error_type"] for r in records if r["status"] == 503} == {"overloaded"}


def test_overload_check_does_not_cover_probes(
    start_gateway: GatewayFactory, emulator: ServerThread, clients: Clients
) -> None:
    gateway = start(start_gateway, emulator, server={"max_concurrent_requests": 1})
    slow = user(script(first_token_delay_ms=1500))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        busy = pool.submit(
            clients(gateway, timeout=30).chat.completions.create, model="nova-micro", messages=slow
        )
        deadline = time.monotonic() + 5
        while samples(gateway, "gateway_inflight_requests", route="/v1/chat/completions") < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with httpx.Client(base_url=gateway.url, timeout=5) as http:
            assert http.get("/healthz").status_code == 200
            assert http.get("/readyz").status_code == 200
        busy.result(timeout=20)
