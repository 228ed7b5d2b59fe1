"""Graceful shutdown of a real `bedrock-gateway serve` process.

A stream is in flight when SIGTERM arrives: readiness must fail at once, the stream must
finish, its usage record must be written, and the process must exit 0.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.emulator import create_emulator_app
from tests.servers import ServerThread, free_port, serve

KEY = "sk-shutdown-test"


@pytest.fixture(scope="module")
def emulator() -> Iterator[ServerThread]:
    with serve(create_emulator_app()) as server:
        yield server


def start_gateway(tmp_path: Path, emulator_url: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    config = {
        "server": {"host": "127.0.0.1", "port": port, "graceful_shutdown_s": 20},
        "bedrock": {"region": "us-east-1", "endpoint_url": emulator_url},
        "models": [{"name": "nova-micro", "bedrock_id": "amazon.nova-micro-v1:0"}],
        "auth": {"keys": [{"id": "app1", "key_sha256": hashlib.sha256(KEY.encode()).hexdigest()}]},
        "usage": {
            "store": f"sqlite:///{tmp_path / 'usage.db'}",
            "spill_path": str(tmp_path / "spill.jsonl"),
        },
        "logging": {"format": "json"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(path)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"gateway did not start:\n{process.communicate()[0]}")


def test_sigterm_lets_the_stream_finish_and_records_it(
    tmp_path: Path, emulator: ServerThread
) -> None:
    process, url = start_gateway(tmp_path, emulator.url)
    script = '@emulator {"reply": "a b c d e f g h", "chunks": 8, "delay_ms": 400}'
    received: list[str] = []
    first_chunk = threading.Event()

    def consume() -> None:
        with httpx.stream(
            "POST",
            url + "/v1/chat/completions",
            json={
                "model": "nova-micro",
                "stream": True,
                "messages": [{"role": "user", "content": script}],
            },
            headers={"authorization": f"Bearer {KEY}"},
            timeout=30,
        ) as response:
            for line in response.iter_lines():
                if line:
                    received.append(line)
                    first_chunk.set()

    client = threading.Thread(target=consume)
    client.start()
    try:
        assert first_chunk.wait(15)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        ready = httpx.get(url + "/readyz", timeout=5)
        assert ready.status_code == 503 and ready.json() == {"status": "shutting down"}
        client.join(30)
        assert not client.is_alive()
        assert received[-1] == "data: [DONE]"
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        output = process.communicate()[0]
    with sqlite3.connect(tmp_path / "usage.db") as conn:
        rows = conn.execute(
            "SELECT status, stream, output_tokens, estimated FROM usage_records"
        ).fetchall()
    assert rows == [(200, 1, 8, 0)], output
    assert "Traceback" not in output
