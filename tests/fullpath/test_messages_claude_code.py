"""Claude Code itself (`claude -p`) through the gateway to the emulator.

Claude Code is found as `$GATEWAY_TEST_CLAUDE`, a project-local node_modules/.bin/claude,
`claude` on the PATH or /tmp/clients/node_modules/.bin/claude; the tests skip, saying so,
when there is none (`npm install @anthropic-ai/claude-code` provides it). It runs with a
throw-away HOME and every kind of traffic but the base URL switched off, so nothing leaves
127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fullpath.conftest import API_KEY, GatewayFactory, RunningGateway, ledger, script
from tests.fullpath.messages_support import SONNET, SONNET_PRICING, messages_models
from tests.servers import ServerThread

HAIKU = "claude-haiku-4-5"
_ROOT = Path(__file__).resolve().parents[2]
_TIMEOUT_S = 120


def _claude() -> str | None:
    for candidate in (
        os.environ.get("GATEWAY_TEST_CLAUDE"),
        str(_ROOT / "node_modules" / ".bin" / "claude"),
        shutil.which("claude"),
        "/tmp/clients/node_modules/.bin/claude",
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


CLAUDE = _claude()
pytestmark = pytest.mark.skipif(
    CLAUDE is None,
    reason="Claude Code not installed: npm install @anthropic-ai/claude-code "
    "(or set GATEWAY_TEST_CLAUDE to its `claude`)",
)


@pytest.fixture
def gateway(
    start_gateway: GatewayFactory, emulator: ServerThread, tmp_path: Path
) -> RunningGateway:
    models = messages_models(emulator.url, tmp_path)
    models.append(
        {
            "name": HAIKU,
            "bedrock_id": "us.anthropic.claude-haiku-4-5-20251001-v1:0",
            "pricing": SONNET_PRICING,
        }
    )
    return start_gateway(models=models)


def run_claude(
    gateway: RunningGateway, home: Path, prompt: str, *args: str
) -> subprocess.CompletedProcess[str]:
    assert CLAUDE is not None
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway.url,
        "ANTHROPIC_API_KEY": API_KEY,
        "ANTHROPIC_MODEL": SONNET,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": SONNET,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": HAIKU,
        "ANTHROPIC_DEFAULT_OPUS_MODEL": SONNET,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_BUG_COMMAND": "1",
        "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
    }
    work = home / "project"
    work.mkdir(exist_ok=True)
    return subprocess.run(
        [CLAUDE, "-p", prompt, *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        check=False,
    )


def test_a_plain_answer(gateway: RunningGateway, tmp_path: Path) -> None:
    done = run_claude(gateway, tmp_path, script("Say hi", reply="Hello from Bedrock."))
    assert done.returncode == 0, done.stderr + done.stdout
    assert "Hello from Bedrock." in done.stdout
    records = ledger(gateway)
    assert records and all(r["route"] == "/v1/messages" for r in records)
    main = [r for r in records if r["model"] == SONNET]
    assert main and all(r["status"] == 200 and r["stream"] == 1 for r in main)
    # Claude Code's metadata.user_id (a JSON text) is the record's end_user.
    assert "session_id" in json.loads(main[0]["end_user"])
    # It sends betas Bedrock refuses ("invalid beta flag", as the emulator does): the
    # call succeeded because the gateway dropped them.


def test_the_bash_tool_result_reaches_bedrock(gateway: RunningGateway, tmp_path: Path) -> None:
    call: dict[str, Any] = {
        "name": "Bash",
        "input": {"command": "echo tool-output-$((40+2))", "description": "echo"},
    }
    done = run_claude(
        gateway,
        tmp_path,
        script("Run it", tool_calls=[call]),
        "--allowedTools",
        "Bash",
    )
    assert done.returncode == 0, done.stderr + done.stdout
    # The emulator echoes the last user message: here, the Bash tool's result.
    assert "tool-output-42" in done.stdout
    turns = [r for r in ledger(gateway) if r["model"] == SONNET]
    assert len(turns) >= 2  # the tool call, then the answer to its result


def test_a_spent_team_budget_stops_it(
    start_gateway: GatewayFactory, emulator: ServerThread, tmp_path: Path
) -> None:
    from tests.fullpath.test_reliability import auth

    models = messages_models(emulator.url, tmp_path)
    models.append({"name": HAIKU, "bedrock_id": "us.anthropic.claude-haiku-4-5-20251001-v1:0"})
    gateway = start_gateway(
        models=models, auth=auth({}, teams={"search": {"budget_usd_monthly": "0.000001"}})
    )
    first = run_claude(gateway, tmp_path, script("Say hi", reply="Spent."))
    assert first.returncode == 0, first.stderr + first.stdout
    second = run_claude(gateway, tmp_path, "Say hi again")
    assert second.returncode != 0
    assert "Monthly budget reached for team 'search'" in second.stdout + second.stderr
