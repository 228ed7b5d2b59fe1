"""The `bedrock-gateway` command: check-config and keys new (serve/demo run in other tests)."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway.__main__ import main
from gateway.config import parse_config

ROOT = Path(__file__).resolve().parents[1]


def test_keys_new_prints_a_strong_key_and_its_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "new", "--id", "app9", "--team", "search", "--user", "zoe"]) == 0
    out = capsys.readouterr().out
    key = re.search(r"API key \(shown once, store it now\): (\S+)", out)
    assert key is not None and len(key.group(1)) >= 40
    entry = yaml.safe_load(out.split("Config entry (under auth.keys):\n", 1)[1])[0]
    assert entry == {
        "id": "app9",
        "key_sha256": hashlib.sha256(key.group(1).encode()).hexdigest(),
        "team": "search",
        "user": "zoe",
    }
    # The entry pastes into a config as it is.
    parse_config(yaml.safe_dump({"auth": {"keys": [entry]}}), {}, source="pasted")


def test_keys_are_random(capsys: pytest.CaptureFixture[str]) -> None:
    main(["keys", "new"])
    main(["keys", "new"])
    keys = re.findall(r"store it now\): (\S+)", capsys.readouterr().out)
    assert len(set(keys)) == 2


def test_check_config_masks_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("auth:\n  keys:\n    - {id: a, key: '${SECRET_KEY}'}\n")
    monkeypatch.setenv("SECRET_KEY", "very-secret-and-long-enough-for-a-key")
    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "very-secret" not in out
    assert yaml.safe_load(out)["auth"]["keys"][0]["key"] == "***"


def test_check_config_fails_with_the_key_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("bedrock:\n  retries: {mode: fast}\n")
    assert main(["check-config", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}: invalid config" in err and "bedrock.retries.mode" in err


def test_example_config_passes_check_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(ROOT / "config.example.yaml")]) == 0


def test_python_dash_m_gateway_works() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and "bedrock-gateway" in result.stdout
