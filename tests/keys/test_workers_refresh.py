"""A key created or revoked through one worker is accepted or refused by every worker of
`serve --workers 2` within `auth.refresh_s` + 1 s, on SQLite and on PostgreSQL; and a key
made with the CLI reaches the running workers the same way.

Each check sends `PROBES` requests, each on a fresh connection, which the kernel spreads
over the two workers' SO_REUSEPORT sockets at random: the chance that all of them land on
one worker is 2 * 0.5**PROBES (about 2e-6), so a worker that missed the change is found.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.keys.conftest import _postgres_problem, drop_schema, postgres_schema_url
from tests.processes import process_config, sha
from tests.servers import ServerThread

pytestmark = pytest.mark.slow

ADMIN_KEY = "sk-workers-admin"
REFRESH_S = 1.0
PROBES = 20


def statuses(url: str, key: str) -> set[int]:
    """GET /v1/models (authenticated, calls no model) on PROBES fresh connections."""
    seen: set[int] = set()
    for _ in range(PROBES):
        with httpx.Client(timeout=10) as client:
            response = client.get(url + "/v1/models", headers={"Authorization": f"Bearer {key}"})
            seen.add(response.status_code)
    return seen


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def usage_url(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'usage.db'}"
        return
    dsn = os.environ.get("GATEWAY_TEST_POSTGRES_URL")
    if not dsn:
        pytest.skip("GATEWAY_TEST_POSTGRES_URL is not set")
    problem = await _postgres_problem(dsn)
    if problem:
        pytest.skip(problem)
    schema, url = await postgres_schema_url(dsn)
    try:
        yield url
    finally:
        await drop_schema(dsn, schema)


def test_changes_reach_every_worker_within_refresh_s(
    tmp_path: Path,
    emulator: ServerThread,
    gateway_process,
    usage_url: str,  # type: ignore[no-untyped-def]
) -> None:
    config = process_config(tmp_path, emulator.url, keys=[])
    config["auth"] = {"admin_keys_sha256": [sha(ADMIN_KEY)], "refresh_s": REFRESH_S}
    config["usage"]["store"] = usage_url
    running = gateway_process(config, tmp_path, workers=2)
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}

    with httpx.Client(base_url=running.url, timeout=10) as http:
        created = http.post("/v1/admin/keys", headers=admin, json={"id": "w1", "team": "t"})
        assert created.status_code == 201, created.text
        changed_at = time.monotonic()
        key = created.json()["key"]
        time.sleep(max(0.0, changed_at + REFRESH_S + 1 - time.monotonic()))
        assert statuses(running.url, key) == {200}

        revoked = http.delete("/v1/admin/keys/w1", headers=admin)
        assert revoked.status_code == 200
        changed_at = time.monotonic()
        time.sleep(max(0.0, changed_at + REFRESH_S + 1 - time.monotonic()))
        assert statuses(running.url, key) == {401}

    # The CLI writes the same store; the running workers pick its key up too.
    cli = subprocess.run(
        [sys.executable, "-m", "gateway", "keys", "create", "--id", "from-cli",
         "--config", str(running.config_path)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    match = re.search(r"store it now\): (\S+)", cli.stdout)
    assert match is not None
    time.sleep(REFRESH_S + 1)
    assert statuses(running.url, match.group(1)) == {200}
    # No plaintext key reached the logs.
    output = running.output()
    assert key not in output and match.group(1) not in output
