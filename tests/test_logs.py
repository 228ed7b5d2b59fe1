"""Logs of a real `bedrock-gateway serve`: one JSON object per line, and nothing secret.

Collectors index JSON fields, so every line on stderr (ours and uvicorn's) must parse,
each billable request must leave exactly one access line with the fields an operator
filters on, and no line may carry a prompt, a completion or an API key while
`logging.log_prompts` is false (the default). With `log_prompts: true` the access line
gains the prompt and the completion the handler collected, and still never a key.

`GatewayProcess` (tests/processes.py) runs the `serve` process and collects its output.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from gateway.config import GatewayConfig
from gateway.logs import ACCESS_LOGGER, JsonFormatter
from gateway.metrics import Metrics
from gateway.pipeline.context import RequestContext, TokenUsage
from gateway.pipeline.finish import finish
from gateway.pipeline.runtime import Gateway, Runtime
from gateway.usage.recorder import UsageRecorder
from gateway.usage.sqlite import SQLiteUsageStore
from tests.harness import script
from tests.processes import GatewayProcessFactory, parse_json_line, process_config, sha
from tests.servers import ServerThread

KEY = "sk-logs-search-alice"
WRONG_KEY = "sk-logs-not-configured"
PROMPT = "PROMPT-MARKER-the-secret-recipe"
COMPLETION = "COMPLETION-MARKER-bake-at-180"
EMBEDDED = "EMBEDDING-MARKER-customer-notes"


def _chat(url: str, key: str, request_id: str, **body: Any) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}", "x-request-id": request_id},
        timeout=30,
    )


def test_access_lines_uvicorn_lines_and_no_secrets(
    tmp_path: Path, emulator: ServerThread, gateway_process: GatewayProcessFactory
) -> None:
    keys = [{"id": "app1", "key_sha256": sha(KEY), "team": "search", "user": "alice"}]
    running = gateway_process(process_config(tmp_path, emulator.url, keys=keys), tmp_path)
    usage = {"inputTokens": 21, "outputTokens": 4, "cacheReadInputTokens": 7}

    ok = _chat(
        running.url, KEY, "req-ok",
        model="claude-3-5-sonnet",
        messages=[{"role": "user", "content": script(PROMPT, reply=COMPLETION, usage=usage)}],
    )  # fmt: skip
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == COMPLETION
    streamed = _chat(
        running.url, KEY, "req-stream",
        model="nova-micro",
        stream=True,
        messages=[
            {
                "role": "user",
                "content": script(PROMPT, reply=COMPLETION, usage=usage, first_token_delay_ms=50),
            }
        ],
    )  # fmt: skip
    assert streamed.status_code == 200 and streamed.text.endswith("data: [DONE]\n\n")
    throttled = _chat(
        running.url, KEY, "req-throttled",
        model="claude-3-5-sonnet",
        messages=[{"role": "user", "content": script(PROMPT, error="ThrottlingException")}],
    )  # fmt: skip
    assert throttled.status_code == 429
    refused = _chat(
        running.url, WRONG_KEY, "req-refused",
        model="claude-3-5-sonnet",
        messages=[{"role": "user", "content": PROMPT}],
    )  # fmt: skip
    assert refused.status_code == 401
    embedded = httpx.post(
        running.url + "/v1/embeddings",
        json={"model": "titan-embed-text-v2", "input": EMBEDDED},
        headers={"authorization": f"Bearer {KEY}", "x-request-id": "req-embed"},
        timeout=30,
    )
    assert embedded.status_code == 200
    # Not billable: no usage record, so no access line either.
    for path in ("/v1/models", "/healthz", "/readyz", "/metrics"):
        assert httpx.get(running.url + path, headers={"authorization": f"Bearer {KEY}"}).is_success

    assert running.stop() == 0
    output = running.output()

    # Every line is one JSON object with the common fields: nothing is printed raw.
    for line in output.splitlines():
        data = parse_json_line(line)
        assert data is not None, f"not a JSON object: {line!r}"
        assert {"ts", "level", "logger", "message"} <= data.keys(), line
        assert "\x1b" not in line and "color_message" not in data, line

    records = running.records()
    uvicorn_messages = [r["message"] for r in records if r["logger"].startswith("uvicorn")]
    assert any(m.startswith("Started server process") for m in uvicorn_messages)
    assert "Application startup complete." in uvicorn_messages
    assert "Application shutdown complete." in uvicorn_messages

    access = [r for r in records if r["logger"] == ACCESS_LOGGER]
    by_id = {r["request_id"]: r for r in access}
    assert len(access) == len(by_id) == 5, access
    assert set(by_id) == {"req-ok", "req-stream", "req-throttled", "req-refused", "req-embed"}

    def fields(request_id: str, *names: str) -> tuple[Any, ...]:
        return tuple(by_id[request_id][name] for name in names)

    common = ("key_id", "team", "model", "status", "stream", "error_type")
    tokens = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    assert fields("req-ok", *common) == ("app1", "search", "claude-3-5-sonnet", 200, False, None)
    assert fields("req-ok", *tokens) == (21, 4, 7, 0)
    assert fields("req-stream", *common) == ("app1", "search", "nova-micro", 200, True, None)
    assert fields("req-stream", *tokens) == (21, 4, 7, 0)
    assert fields("req-throttled", *common) == (
        "app1", "search", "claude-3-5-sonnet", 429, False, "ThrottlingException",
    )  # fmt: skip
    assert fields("req-refused", "key_id", "team", "status") == (None, None, 401)
    assert by_id["req-refused"]["error_type"]
    assert fields("req-embed", "model", "status", "input_tokens") == (
        "titan-embed-text-v2", 200, (len(EMBEDDED) + 3) // 4,
    )  # fmt: skip
    # Timings: every line has a latency; the first token only where a stream sent one.
    assert all(r["latency_ms"] > 0 for r in access)
    assert by_id["req-stream"]["ttft_ms"] >= 50
    assert by_id["req-ok"]["ttft_ms"] is None

    for secret in (PROMPT, COMPLETION, EMBEDDED, KEY, WRONG_KEY, sha(KEY)):
        assert secret not in output, secret


def _finish_one(log_prompts: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> str:
    """Run one finished request through the pipeline's `finish`; the access line, formatted."""
    config = GatewayConfig.model_validate(
        {
            "models": [{"name": "nova-micro", "bedrock_id": "amazon.nova-micro-v1:0"}],
            "auth": {"keys": [{"id": "app1", "key_sha256": sha(KEY), "team": "search"}]},
            "logging": {"log_prompts": log_prompts},
        }
    )
    recorder = UsageRecorder(SQLiteUsageStore(tmp_path / "unused.db"), flush_interval_ms=1000)
    gateway = Gateway(
        Runtime.build(config),
        bedrock=None,  # type: ignore[arg-type]  # finish() never calls Bedrock
        recorder=recorder,
        metrics=Metrics(CollectorRegistry()),
        limiter=None,  # type: ignore[arg-type]  # nor the limiter, without an admission
        images=None,  # type: ignore[arg-type]
        limiter_factory=lambda current: None,  # type: ignore[arg-type,return-value]
    )
    runtime = gateway.runtime
    ctx = RequestContext(
        id="r1", arrived=datetime.now(UTC), started=time.perf_counter(), request_id="req-1",
        route="/v1/chat/completions", runtime=runtime, principal=runtime.keys.lookup(KEY),
        model=runtime.catalog.resolve("nova-micro"), status=200,
        usage=TokenUsage(input_tokens=3, output_tokens=2),
    )  # fmt: skip
    # What a surface hands over (the pipeline sets these only with `log_prompts`; finish
    # must leave them out of the line when it is off, whatever is set).
    ctx.prompt = [{"role": "user", "content": PROMPT}]
    ctx.completion = COMPLETION
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        finish(gateway, ctx)
    (line,) = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    return JsonFormatter().format(line)


def test_prompts_stay_out_of_the_access_line_by_default(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    line = _finish_one(False, tmp_path, caplog)
    data = json.loads(line)
    assert data["request_id"] == "req-1" and data["output_tokens"] == 2
    assert "prompt" not in data and "completion" not in data
    assert PROMPT not in line and COMPLETION not in line


def test_log_prompts_adds_prompt_and_completion_but_never_the_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    line = _finish_one(True, tmp_path, caplog)
    data = json.loads(line)
    assert data["prompt"] == [{"role": "user", "content": PROMPT}]
    assert data["completion"] == COMPLETION
    assert KEY not in line and sha(KEY) not in line


def _line(**extra: object) -> dict[str, object]:
    record = logging.LogRecord("gateway.access", logging.INFO, __file__, 1, "request", None, None)
    record.__dict__.update(extra)
    data: dict[str, object] = json.loads(JsonFormatter().format(record))
    return data


def test_json_lines_carry_any_text_a_model_can_return() -> None:
    # A completion logged with log_prompts may hold any text, even a lone surrogate.
    assert _line(completion="héllo ✓")["completion"] == "héllo ✓"
    assert _line(completion="broken \ud800 pair")["completion"] == "broken \ud800 pair"


def test_values_json_cannot_hold_are_written_as_text() -> None:
    assert _line(cost=Decimal("0.0000123"))["cost"] == "0.0000123"
