"""Codex CLI (`codex exec`, 0.171) against the gateway: a custom model provider whose
`base_url` is the gateway and `wire_api = "responses"`, offline, in a temporary
CODEX_HOME. Codex streams every request (`stream: true`, `store: false`, `include:
["reasoning.encrypted_content"]`), rebuilds its history from `response.output_item.done`
and needs `response.completed`; its shell tool is the function `exec_command`.

Codex is found as `$GATEWAY_TEST_CODEX`, else `codex` on PATH, else a project-local
`node_modules/.bin/codex`; the tests skip, saying so, when it is missing. Every run is
bounded (`timeout`), and talks only to 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fullpath.conftest import (
    API_KEY,
    GatewayFactory,
    RunningGateway,
    base_config,
    ledger,
    script,
)

_RUN_TIMEOUT_S = 120
REASONING_MODEL = {
    "name": "claude-thinking",
    "bedrock_id": "anthropic.claude-3-7-sonnet-20250219-v1:0",
    "reasoning": {"supported": True},
}


def _codex() -> str | None:
    candidates = [
        os.environ.get("GATEWAY_TEST_CODEX"),
        shutil.which("codex"),
        str(Path(__file__).parents[2] / "node_modules" / ".bin" / "codex"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


CODEX = _codex()
pytestmark = pytest.mark.skipif(
    CODEX is None,
    reason="Codex CLI not found: set GATEWAY_TEST_CODEX, or `npm install --prefix . @openai/codex@0.171.0`",
)


@pytest.fixture
def gateway(start_gateway: GatewayFactory, tmp_path: Path) -> RunningGateway:
    models = base_config("http://unused", tmp_path)["models"]
    return start_gateway(models=[*models, REASONING_MODEL])


def _run_codex(
    gateway: RunningGateway, tmp_path: Path, prompt: str, *, model: str, websockets: bool = False
) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "codex-home"
    work = tmp_path / "work"
    home.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    (home / "config.toml").write_text(
        f'model = "{model}"\n'
        'model_provider = "gateway"\n'
        'approval_policy = "never"\n'
        'sandbox_mode = "danger-full-access"\n'
        "[model_providers.gateway]\n"
        'name = "bedrock-gateway"\n'
        f'base_url = "{gateway.url}/v1"\n'
        'env_key = "GATEWAY_TEST_KEY"\n'
        'wire_api = "responses"\n'
        "request_max_retries = 0\n"
        "stream_max_retries = 0\n"
        f"supports_websockets = {'true' if websockets else 'false'}\n",
        encoding="utf-8",
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "CODEX_HOME": str(home),
        "GATEWAY_TEST_KEY": API_KEY,
        "NO_PROXY": "127.0.0.1",
        "RUST_LOG": "error",
    }
    assert CODEX is not None
    return subprocess.run(
        [
            CODEX,
            "exec",
            "--skip-git-repo-check",
            "-C",
            str(work),
            "-o",
            str(tmp_path / "last.txt"),
            prompt,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=_RUN_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("websockets", [False, True])
def test_codex_plain_answer(gateway: RunningGateway, tmp_path: Path, websockets: bool) -> None:
    """With `supports_websockets` Codex first tries a WebSocket; our 426 sends it to SSE."""
    prompt = script(reply="Hello from Bedrock.")
    done = _run_codex(gateway, tmp_path, prompt, model="nova-micro", websockets=websockets)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "last.txt").read_text(encoding="utf-8").strip() == "Hello from Bedrock."
    rows = ledger(gateway)
    assert rows and {(row["route"], row["status"], row["stream"]) for row in rows} == {
        ("/v1/responses", 200, 1)
    }


def test_codex_runs_a_shell_command_and_the_output_reaches_bedrock(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    """The emulator (thinking on) asks for `exec_command`; Codex runs it and sends the output
    back with the reasoning item it got, which must reach Bedrock with its signature."""
    ask = script(
        reasoning={"text": "I will compute it in the shell.", "signature": "c2lnbmF0dXJl"},
        tool_calls=[{"name": "exec_command", "input": {"cmd": "echo $((1234*5))"}}],
    )
    done = _run_codex(gateway, tmp_path, ask, model="claude-thinking")
    assert done.returncode == 0, done.stderr[-3000:]
    last = (tmp_path / "last.txt").read_text(encoding="utf-8")
    # The second turn's answer echoes the tool result Bedrock received: the command's output.

    assert last.startswith("You said:") and "6170" in last, last
    rows = ledger(gateway)
    assert [(row["route"], row["status"]) for row in rows] == [("/v1/responses", 200)] * 2
