"""Logs of a real `bedrock-gateway serve`: one JSON object per line, and nothing secret.

Collectors index JSON fields, so every line on stderr (ours and uvicorn's) must parse,
each billable request must leave exactly one access line with the fields an operator
filters on, and no line may carry a prompt, a completion or an API key while
`logging.log_prompts` is false (the default). With `log_prompts: true` the access line
gains the prompt and the completion the handler collected, and still never a key.

`GatewayProcess` (a `serve` process whose output is collected line by line) is shared
with the other real-process tests: workers, reload and the ledger proof.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry

from gateway.config import GatewayConfig
from gateway.logs import ACCESS_LOGGER, JsonFormatter
from gateway.metrics import Metrics
from gateway.service import Gateway, Runtime
from gateway.usage.record import UsageRecord
from gateway.usage.recorder import UsageRecorder
from gateway.usage.sqlite import SQLiteUsageStore
from tests.fullpath import conftest as fullpath
from tests.fullpath.conftest import script
from tests.servers import ServerThread, free_port

emulator = fullpath.emulator

KEY = "sk-logs-search-alice"
WRONG_KEY = "sk-logs-not-configured"
PROMPT = "PROMPT-MARKER-the-secret-recipe"
COMPLETION = "COMPLETION-MARKER-bake-at-180"
EMBEDDED = "EMBEDDING-MARKER-customer-notes"
START_TIMEOUT_S = 30


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def process_config(
    tmp_path: Path, emulator_url: str, *, keys: list[dict[str, Any]], **overrides: Any
) -> dict[str, Any]:
    """A config for a real `serve` on a free loopback port, with its ledger in `tmp_path`."""
    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": free_port(), "graceful_shutdown_s": 20},
        "bedrock": {
            "region": "us-east-1",
            "endpoint_url": emulator_url,
            "retries": {"mode": "standard", "max_attempts": 1},
        },
        "models": [
            {
                "name": "claude-3-5-sonnet",
                "bedrock_id": "anthropic.claude-3-5-sonnet-20240620-v1:0",
                "pricing": {
                    "input_per_1k": "0.003",
                    "output_per_1k": "0.015",
                    "cache_read_per_1k": "0.0003",
                    "cache_write_per_1k": "0.00375",
                },
            },
            {
                "name": "nova-micro",
                "bedrock_id": "amazon.nova-micro-v1:0",
                "pricing": {"input_per_1k": "0.000035", "output_per_1k": "0.00014"},
            },
            {
                "name": "titan-embed-text-v2",
                "bedrock_id": "amazon.titan-embed-text-v2:0",
                "kind": "embedding",
            },
        ],
        "auth": {"keys": keys},
        "usage": {
            "store": f"sqlite:///{tmp_path / 'usage.db'}",
            "spill_path": str(tmp_path / "usage.spill.jsonl"),
            "flush_interval_ms": 50,
        },
        "logging": {"format": "json"},
    }
    config.update(overrides)
    return config


@dataclass
class GatewayProcess:
    """A running `python -m gateway serve`; stdout and stderr are collected as lines."""

    process: subprocess.Popen[str]
    url: str
    config_path: Path
    lines: list[str] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _reader: threading.Thread | None = None

    @classmethod
    def start(
        cls,
        config: dict[str, Any],
        directory: Path,
        *,
        workers: int = 1,
        env: dict[str, str] | None = None,
    ) -> GatewayProcess:
        config_path = directory / "config.yaml"
        config_path.write_text(yaml.safe_dump(config))
        environment = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            **(env or {}),
        }
        command = [sys.executable, "-m", "gateway", "serve", "--config", str(config_path)]
        if workers != 1:
            command += ["--workers", str(workers)]
        process = subprocess.Popen(
            command,
            cwd=directory,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # Its own process group, so that `kill` reaches the workers too.
            start_new_session=True,
        )
        server = config["server"]
        running = cls(process, f"http://{server['host']}:{server['port']}", config_path)
        running._reader = threading.Thread(target=running._read, daemon=True)
        running._reader.start()
        return running

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:  # ends at EOF, when the process has exited
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"gateway did not get ready:\n{self.output()}")

    def mark(self) -> int:
        """A position in the output, for `wait_for(after=...)`."""
        with self._changed:
            return len(self.lines)

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], *, after: int = 0, timeout_s: float = 10
    ) -> dict[str, Any]:
        """The first JSON line past `after` satisfying `predicate`, waiting for it if need be."""
        deadline = time.monotonic() + timeout_s
        seen = after
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    data = _parse(line)
                    if data is not None and predicate(data):
                        return data
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no such log line within {timeout_s} s:\n{self.output()}")
                self._changed.wait(remaining)

    def send(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM, then wait for the exit (and the last lines); returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout_s)
        finally:
            self.kill()
        return code

    def kill(self) -> None:
        """SIGKILL whatever is left of this gateway: the process and any worker of it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # the group `start` created
        self.process.wait(10)
        if self._reader is not None:
            self._reader.join(10)
            if not self._reader.is_alive() and self.process.stdout is not None:
                self.process.stdout.close()

    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def records(self) -> list[dict[str, Any]]:
        """Every output line that is a JSON object (see `test_every_line_is_json`)."""
        with self._changed:
            lines = list(self.lines)
        return [data for data in map(_parse, lines) if data is not None]


def _parse(line: str) -> dict[str, Any] | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


GatewayProcessFactory = Callable[..., GatewayProcess]


@pytest.fixture
def gateway_process() -> Iterator[GatewayProcessFactory]:
    """Start `serve` processes (`GatewayProcess.start` arguments); killed at teardown."""
    started: list[GatewayProcess] = []

    def start(config: dict[str, Any], directory: Path, **kwargs: Any) -> GatewayProcess:
        running = GatewayProcess.start(config, directory, **kwargs)
        started.append(running)
        running.wait_ready()
        return running

    yield start
    for running in started:
        running.kill()


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
        data = _parse(line)
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
    """Run one finished request through `Gateway.finish`; the access line, formatted."""
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
    record = UsageRecord(
        id="r1", ts=datetime.now(UTC), request_id="req-1",
        route="/v1/chat/completions", key_id="app1", team="search", model="nova-micro",
        bedrock_model_id="amazon.nova-micro-v1:0", status=200, input_tokens=3, output_tokens=2,
    )  # fmt: skip
    # What a handler hands over for `log_prompts` (see gateway/logs.py).
    record.extra["prompt"] = [{"role": "user", "content": PROMPT}]
    record.extra["completion"] = COMPLETION
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        gateway.finish(record)
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
