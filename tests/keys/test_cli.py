"""`bedrock-gateway keys create|list|update|rotate|revoke` on the key store, through the
real entry point, and what it leaves in the database and the audit log."""

from __future__ import annotations

import getpass
import json
import re
import sqlite3
from pathlib import Path

import pytest
import yaml

from gateway.__main__ import main
from gateway.keys.records import digest_of


@pytest.fixture
def config_file(tmp_path: Path) -> str:
    path = tmp_path / "config.yaml"
    config = {
        "usage": {"store": f"sqlite:///{tmp_path / 'usage.db'}"},
        "models": [{"name": "m1", "bedrock_id": "amazon.nova-micro-v1:0"}],
        "auth": {"keys": [{"id": "cfg", "key_sha256": digest_of("x")}]},
    }
    path.write_text(yaml.safe_dump(config))
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_whole_lifecycle(
    capsys: pytest.CaptureFixture[str], config_file: str, tmp_path: Path
) -> None:
    code, out, _ = run(
        capsys, "keys", "create", "--id", "ops1", "--team", "infra", "--models", "m1",
        "--rpm", "5", "--budget", "20", "--config", config_file,
    )  # fmt: skip
    assert code == 0
    key = re.search(r"store it now\): (\S+)", out)
    assert key is not None
    code, out, _ = run(capsys, "keys", "list", "--format", "json", "--config", config_file)
    listed = json.loads(out)
    assert listed["object"] == "list"
    assert [(k["id"], k["source"]) for k in listed["data"]] == [
        ("cfg", "config"),
        ("ops1", "store"),
    ]
    stored = listed["data"][1]
    assert stored["key_sha256"] == digest_of(key.group(1))
    assert (stored["models"], stored["rpm"], stored["budget_usd_monthly"]) == (["m1"], 5, 20.0)

    assert run(capsys, "keys", "update", "ops1", "--disable", "--config", config_file)[0] == 0
    code, out, _ = run(capsys, "keys", "list", "--config", config_file)
    assert "ops1 (disabled)" in out and "cfg" in out
    code, out, _ = run(capsys, "keys", "rotate", "ops1", "--config", config_file)
    rotated = re.search(r"old one stops working\): (\S+)", out)
    assert code == 0 and rotated is not None and rotated.group(1) != key.group(1)
    assert run(capsys, "keys", "revoke", "ops1", "--config", config_file)[0] == 0

    conn = sqlite3.connect(tmp_path / "usage.db")
    dump = "\n".join(conn.iterdump())
    assert key.group(1) not in dump and rotated.group(1) not in dump
    actors = {row[0] for row in conn.execute("SELECT actor FROM key_audit")}
    assert actors == {f"cli:{getpass.getuser()}"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["keys", "create", "--id", "cfg"], "taken by the config file"),
        (["keys", "create", "--id", "bad id"], "id"),
        (["keys", "create", "--id", "k", "--rpm", "0"], "rpm"),
        (["keys", "create", "--id", "k", "--models", "nope"], "unknown model"),
        (["keys", "update", "cfg", "--rpm", "3"], "read-only"),
        (["keys", "rotate", "missing"], "No stored key"),
        (["keys", "update", "missing"], "nothing to change"),
    ],
)
def test_bad_input_is_one_error_line_and_non_zero(
    capsys: pytest.CaptureFixture[str], config_file: str, argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, *argv, "--config", config_file)
    assert code != 0
    assert err.startswith("error: ") and message in err
