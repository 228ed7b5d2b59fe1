"""Graceful shutdown of a real `bedrock-gateway serve` process.

A stream is in flight when SIGTERM arrives: readiness must fail at once, the stream must
finish, its usage record must be written, and the process must exit 0.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import httpx

from tests.harness import script
from tests.processes import BackgroundStream, GatewayProcessFactory, process_config, sha
from tests.servers import ServerThread

KEY = "sk-shutdown-test"


def test_sigterm_lets_the_stream_finish_and_records_it(
    tmp_path: Path, emulator: ServerThread, gateway_process: GatewayProcessFactory
) -> None:
    config = process_config(tmp_path, emulator.url, keys=[{"id": "app1", "key_sha256": sha(KEY)}])
    gateway = gateway_process(config, tmp_path)
    stream = BackgroundStream.start(
        gateway.url, KEY, script(reply="a b c d e f g h", chunks=8, delay_ms=400)
    )
    assert stream.started.wait(15)
    gateway.send(signal.SIGTERM)
    time.sleep(0.3)
    ready = httpx.get(gateway.url + "/readyz", timeout=5)
    assert ready.status_code == 503 and ready.json() == {"status": "shutting down"}
    stream.join()
    assert stream.lines[-1] == "data: [DONE]"
    assert gateway.process.wait(30) == 0

    with sqlite3.connect(tmp_path / "usage.db") as conn:
        rows = conn.execute(
            "SELECT status, stream, output_tokens, estimated FROM usage_records"
        ).fetchall()
    assert rows == [(200, 1, 8, 0)], gateway.output()
    assert "Traceback" not in gateway.output()
