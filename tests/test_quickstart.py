"""Issue 19, items 15-17: the README's quick start, run as written, in a fresh directory.

Step 3's commands are taken from README.md and run verbatim (only `.venv/bin/` becomes this
interpreter, and `serve` gets `--host 127.0.0.1 --port <free>` so that the test listens on
loopback only); the one manual step, "paste the printed entry under auth.keys", is done
the way a person would. Bedrock is the built-in emulator, reached through
`AWS_ENDPOINT_URL_BEDROCK_RUNTIME` as the README says any boto3 setting works.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from gateway.app import create_app
from gateway.config import GatewayConfig
from tests.servers import ServerThread, free_port

ROOT = Path(__file__).resolve().parents[1]


def _step3_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("3. **Config and a key.**", 1)[1]
    block = re.search(r"```sh\n(.+?)\n\s*```", section, re.DOTALL)
    assert block is not None
    commands = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    return [command for command in commands if command]


def _argv(command: str) -> list[str]:
    argv = shlex.split(command)
    if argv[0] == ".venv/bin/bedrock-gateway":
        return [sys.executable, "-m", "gateway", *argv[1:]]
    return argv


def _paste_under_auth_keys(config: Path, printed: str) -> None:
    entry = printed.split("Config entry (under auth.keys):\n", 1)[1]
    lines = config.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.rstrip() == "  keys:")
    pasted = "".join(f"    {line}\n" for line in entry.splitlines())
    config.write_text("".join([*lines[: at + 1], pasted, *lines[at + 1 :]]))


@contextlib.contextmanager
def _running(argv: list[str], cwd: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    with (cwd / "serve.log").open("w") as log:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


def test_quick_start_step_3_works_as_written(tmp_path: Path, emulator: ServerThread) -> None:
    commands = _step3_commands()
    assert [c.split()[:3] for c in commands] == [
        [".venv/bin/bedrock-gateway", "keys", "new"],
        ["cp", "config.example.yaml", "config.yaml"],
        [".venv/bin/bedrock-gateway", "check-config"],
        [".venv/bin/bedrock-gateway", "serve"],
    ]
    shutil.copy(ROOT / "config.example.yaml", tmp_path / "config.example.yaml")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GATEWAY_"))},
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": emulator.url,
        "PYTHONPATH": str(ROOT),
    }

    def run(command: str) -> str:
        done = subprocess.run(
            _argv(command), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
        return done.stdout

    printed = run(commands[0])
    key = re.search(r"store it now\): (\S+)", printed)
    assert key is not None
    run(commands[1])
    _paste_under_auth_keys(tmp_path / "config.yaml", printed)
    checked = run(commands[2])
    assert key.group(1) not in checked and "app1" in checked

    port = free_port()
    serve = [*_argv(commands[3]), "--host", "127.0.0.1", "--port", str(port)]
    with _running(serve, tmp_path, env) as process:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise AssertionError(
                "serve did not get ready:\n" + (tmp_path / "serve.log").read_text()
            )
        client = openai.OpenAI(base_url=url + "/v1", api_key=key.group(1), max_retries=0)
        answer = client.chat.completions.create(
            model="claude-3-5-sonnet", messages=[{"role": "user", "content": "Hello!"}]
        )
        assert answer.choices[0].message.content == "You said: Hello!"
        # Item 15: nothing written in the example authenticates.
        for guess in ("change-me", "0" * 64, "example"):
            refused = httpx.get(url + "/v1/models", headers={"authorization": f"Bearer {guess}"})
            assert refused.status_code == 401


def test_the_old_example_key_line_stops_the_start(tmp_path: Path) -> None:
    # Item 15: `key: ${APP2_KEY:-change-me}` used to authenticate `Bearer change-me`.
    config = tmp_path / "config.yaml"
    config.write_text("auth:\n  keys:\n    - {id: app2, key: '${APP2_KEY:-change-me}'}\n")
    env = {k: v for k, v in os.environ.items() if k != "APP2_KEY"}
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", "0"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "auth.keys[0]: Value error, key is a placeholder value" in done.stderr


def test_an_empty_model_list_is_logged_loudly(caplog: pytest.LogCaptureFixture) -> None:
    # Item 17: `models: []` gives no models; that is said at start-up, not discovered by 404s.
    with caplog.at_level(logging.WARNING, logger="gateway"):
        create_app(GatewayConfig.model_validate({"models": []}))
    assert "no models are configured" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gateway"):
        create_app(GatewayConfig.model_validate({"models": [{"name": "m", "bedrock_id": "x.y"}]}))
    assert "no models are configured" not in caplog.text
