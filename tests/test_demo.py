"""`bedrock-gateway demo`: --host, --key, and a taken port found before any key is printed.

Issue 19, item 20: with the port taken, demo printed a fresh key and a curl line, then
failed. The demo runs here as a real process on loopback, called with the OpenAI SDK.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import openai

from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
KEY = "demo-key-for-a-workshop-0123456789abcdef"


def _demo(*args: str) -> list[str]:
    return [sys.executable, "-m", "gateway", "demo", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_a_taken_port_is_one_line_and_no_key(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            _demo("--host", "127.0.0.1", "--port", str(port)),
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stdout == ""  # no key, no curl line
    assert done.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_a_weak_key_is_refused_before_anything_starts(tmp_path: Path) -> None:
    done = subprocess.run(
        _demo("--port", str(free_port()), "--key", "change-me"),
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert "placeholder" in done.stderr


def test_demo_with_a_fixed_key_and_host_answers_the_sdk(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            _demo("--host", "127.0.0.1", "--port", str(port), "--key", KEY),
            cwd=tmp_path,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 30
            while f"API key: {KEY}" not in log.read_text():
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            assert f"curl http://127.0.0.1:{port}/v1/chat/completions" in log.read_text()
            client = openai.OpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=3
            )
            answer = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "Hello!"}]
            )
            assert answer.choices[0].message.content == "You said: Hello!"
            # Claude Code's default model name works too, over the Messages API.
            claude = anthropic.Anthropic(
                base_url=f"http://127.0.0.1:{port}", api_key=KEY, max_retries=3
            )
            message = claude.messages.create(
                model="claude-sonnet-4-5",
                max_tokens=64,
                messages=[{"role": "user", "content": "Hello!"}],
            )
            assert message.content[0].text == "You said: Hello!"  # type: ignore[union-attr]
            client.close()
            claude.close()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
