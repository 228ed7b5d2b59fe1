"""SIGHUP re-reads the config file of a running `serve`, without a restart.

A key added to the file works after the signal; a stream that was in flight during the
reload finishes normally; a broken file is refused, the running config (every key it had)
stays in force, and an error line says what is wrong with the file.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.harness import script
from tests.processes import (
    BackgroundStream,
    GatewayProcess,
    GatewayProcessFactory,
    process_config,
    sha,
)
from tests.servers import ServerThread

OLD_KEY = "sk-reload-old"
NEW_KEY = "sk-reload-new"
OLD_ENTRY = {"id": "old", "key_sha256": sha(OLD_KEY), "team": "search"}
NEW_ENTRY = {"id": "new", "key_sha256": sha(NEW_KEY), "team": "ads"}
STREAM_WORDS = [f"w{i}" for i in range(8)]


def status_with(running: GatewayProcess, key: str) -> int:
    response = httpx.post(
        running.url + "/v1/chat/completions",
        json={"model": "nova-micro", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )
    return response.status_code


def rewrite(path: Path, config: dict[str, Any] | str) -> None:
    """Replace the file in one rename, as config management tools do: never half-written."""
    text = config if isinstance(config, str) else yaml.safe_dump(config)
    staging = path.with_suffix(".staging")
    staging.write_text(text)
    os.replace(staging, path)


def wait_for_lines(
    running: GatewayProcess, message: str, count: int, *, after: int
) -> list[dict[str, Any]]:
    """The first `count` JSON lines past `after` whose message starts with `message`."""
    return running.wait_for_many(
        lambda line: str(line.get("message", "")).startswith(message),
        count,
        after=after,
        timeout_s=60,
    )


def reload(running: GatewayProcess, message: str) -> dict[str, Any]:
    """SIGHUP, and the log line that reports the outcome (logged after the one before)."""
    mark = running.mark()
    running.send(signal.SIGHUP)
    return running.wait_for(lambda line: line["message"].startswith(message), after=mark)


def test_sighup_reloads_keys_and_refuses_a_broken_file(
    tmp_path: Path, emulator: ServerThread, gateway_process: GatewayProcessFactory
) -> None:
    config = process_config(tmp_path, emulator.url, keys=[OLD_ENTRY])
    running = gateway_process(config, tmp_path)
    assert status_with(running, OLD_KEY) == 200
    assert status_with(running, NEW_KEY) == 401

    # A stream by the old key is in flight while the file changes and SIGHUP arrives.
    stream = BackgroundStream.start(
        running.url, OLD_KEY, script(reply=" ".join(STREAM_WORDS), delay_ms=400)
    )
    try:
        assert stream.started.wait(15)
        rewrite(running.config_path, {**config, "auth": {"keys": [OLD_ENTRY, NEW_ENTRY]}})
        done = reload(running, "config reloaded")
        assert done["keys"] == 2
        assert status_with(running, NEW_KEY) == 200
        assert status_with(running, OLD_KEY) == 200
        assert stream.lines[-1] != "data: [DONE]", "the stream ended too early"
    finally:
        stream.join()
    assert stream.lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in stream.lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == " ".join(STREAM_WORDS)

    # A broken file: refused with the reason, and the running config (both keys) kept.
    broken = yaml.safe_dump({**config, "auth": {"keys": [NEW_ENTRY]}}).replace(
        "models:", "modles:", 1
    )
    rewrite(running.config_path, broken)
    refused = reload(running, "config reload refused")
    assert refused["level"] == "error"
    assert "modles" in refused["message"]
    assert status_with(running, OLD_KEY) == 200
    assert status_with(running, NEW_KEY) == 200

    # Fixed again without the old key: revoked at once, by the same process.
    rewrite(running.config_path, {**config, "auth": {"keys": [NEW_ENTRY]}})
    assert reload(running, "config reloaded")["keys"] == 1
    assert status_with(running, OLD_KEY) == 401
    assert status_with(running, NEW_KEY) == 200

    started = [r for r in running.records() if r["message"].startswith("Started server process")]
    assert len(started) == 1, "the gateway restarted instead of reloading"
    assert running.stop() == 0


def test_sighup_with_workers_reloads_inside_each_worker(
    tmp_path: Path, emulator: ServerThread, gateway_process: GatewayProcessFactory
) -> None:
    # With --workers N the supervisor passes SIGHUP on to every worker, which re-reads the
    # file as a single process does: no worker is replaced, so no connection is dropped.
    config = process_config(tmp_path, emulator.url, keys=[OLD_ENTRY])
    running = gateway_process(config, tmp_path, workers=2)
    wait_for_lines(running, "Application startup complete", 2, after=0)
    assert status_with(running, OLD_KEY) == 200
    assert status_with(running, NEW_KEY) == 401

    rewrite(running.config_path, {**config, "auth": {"keys": [NEW_ENTRY]}})
    mark = running.mark()
    running.send(signal.SIGHUP)
    reloaded = wait_for_lines(running, "config reloaded", 2, after=mark)
    assert [line["keys"] for line in reloaded] == [1, 1]
    # Each request on a new connection, which the kernel gives to either worker.
    assert {status_with(running, NEW_KEY) for _ in range(10)} == {200}
    assert {status_with(running, OLD_KEY) for _ in range(10)} == {401}

    # A broken file: both workers refuse it and keep serving the running config.
    rewrite(running.config_path, {**config, "modles": []})
    running.send(signal.SIGHUP)
    refused = wait_for_lines(running, "config reload refused", 2, after=mark)
    assert all("modles" in line["message"] for line in refused)
    assert {status_with(running, NEW_KEY) for _ in range(10)} == {200}

    started = [r for r in running.records() if r["message"].startswith("Started server process")]
    assert len(started) == 2, "a worker was replaced instead of reloading"
    assert running.stop() == 0
