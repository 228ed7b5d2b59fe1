"""Real `bedrock-gateway serve` processes for tests: config, start, output, signals.

The `gateway_process` fixture (tests/conftest.py) starts them and kills what is left at
teardown; the logs, reload, workers, shutdown and ledger-proof tests share this.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.servers import free_port

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
        return self.wait_for_many(predicate, 1, after=after, timeout_s=timeout_s)[0]

    def wait_for_many(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        count: int,
        *,
        after: int = 0,
        timeout_s: float = 10,
    ) -> list[dict[str, Any]]:
        """The first `count` JSON lines past `after` satisfying `predicate`, in order."""
        deadline = time.monotonic() + timeout_s
        found: list[dict[str, Any]] = []
        seen = after
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    data = parse_json_line(line)
                    if data is not None and predicate(data):
                        found.append(data)
                        if len(found) == count:
                            return found
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{len(found)} of {count} such log lines within {timeout_s} s:\n"
                        f"{self.output()}"
                    )
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
        return [data for data in map(parse_json_line, lines) if data is not None]


def parse_json_line(line: str) -> dict[str, Any] | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


GatewayProcessFactory = Callable[..., GatewayProcess]


@dataclass
class BackgroundStream:
    """A streamed chat completion read line by line on a thread of its own."""

    lines: list[str] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @classmethod
    def start(
        cls, url: str, key: str, content: str, *, model: str = "nova-micro"
    ) -> BackgroundStream:
        stream = cls()

        def consume() -> None:
            with httpx.stream(
                "POST",
                url + "/v1/chat/completions",
                json={
                    "model": model,
                    "stream": True,
                    "messages": [{"role": "user", "content": content}],
                },
                headers={"authorization": f"Bearer {key}"},
                timeout=30,
            ) as response:
                for line in response.iter_lines():
                    if line:
                        stream.lines.append(line)
                        stream.started.set()

        stream.thread = threading.Thread(target=consume, daemon=True)
        stream.thread.start()
        return stream

    def join(self, timeout_s: float = 30) -> None:
        assert self.thread is not None
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the stream did not finish in time"
