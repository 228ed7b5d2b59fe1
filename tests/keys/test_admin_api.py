"""The admin API over real HTTP (uvicorn on loopback), and the stored keys it creates used
by the real `openai` SDK against the emulator: create, use, patch, rotate, revoke, teams,
audit, and every refusal the contract names."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openai
import pytest

from tests.harness import (
    ADMIN_KEY,
    API_KEY,
    GatewayFactory,
    RunningGateway,
    base_config,
    ledger,
    sha,
)

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def chat(gateway: RunningGateway, key: str) -> str:
    reply = gateway.client(key).chat.completions.create(
        model="claude-3-5-sonnet", messages=[{"role": "user", "content": "hi"}]
    )
    return reply.choices[0].message.content or ""


def test_create_use_rotate_revoke_and_audit(gateway: RunningGateway) -> None:
    with gateway.http() as http:
        created = http.post(
            "/v1/admin/keys",
            headers=ADMIN,
            json={"id": "svc1", "team": "search", "user": "carol", "rpm": 100},
        )
        assert created.status_code == 201, created.text
        body = created.json()
        plaintext = body["key"]
        assert body["id"] == "svc1" and body["source"] == "store" and body["disabled"] is False
        assert body["key_sha256"] == sha(plaintext) and body["rpm"] == 100
        assert chat(gateway, plaintext)

        listed = http.get("/v1/admin/keys", headers=ADMIN).json()
        assert listed["object"] == "list"
        by_id = {k["id"]: k for k in listed["data"]}
        assert by_id["app1"]["source"] == "config" and by_id["svc1"]["source"] == "store"
        assert all("key" not in k for k in listed["data"])
        assert http.get("/v1/admin/keys/svc1", headers=ADMIN).json()["team"] == "search"

        patched = http.patch("/v1/admin/keys/svc1", headers=ADMIN, json={"disabled": True})
        assert patched.status_code == 200 and patched.json()["disabled"] is True
        with pytest.raises(openai.AuthenticationError):
            chat(gateway, plaintext)
        http.patch("/v1/admin/keys/svc1", headers=ADMIN, json={"disabled": False})
        assert chat(gateway, plaintext)

        rotated = http.post("/v1/admin/keys/svc1/rotate", headers=ADMIN)
        assert rotated.status_code == 200 and set(rotated.json()) == {"id", "key"}
        new_key = rotated.json()["key"]
        with pytest.raises(openai.AuthenticationError):
            chat(gateway, plaintext)
        assert chat(gateway, new_key)

        revoked = http.delete("/v1/admin/keys/svc1", headers=ADMIN)
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        with pytest.raises(openai.AuthenticationError):
            chat(gateway, new_key)
        again = http.patch("/v1/admin/keys/svc1", headers=ADMIN, json={"disabled": False})
        assert again.status_code == 409
        reused = http.post("/v1/admin/keys", headers=ADMIN, json={"id": "svc1"})
        assert reused.status_code == 409

        audit = http.get("/v1/admin/audit", headers=ADMIN).json()["data"]
        actions = [entry["action"] for entry in audit]
        assert actions == ["key.revoke", "key.rotate", "key.update", "key.update", "key.create"]
        assert {entry["actor"] for entry in audit} == {f"admin-{sha(ADMIN_KEY)[:8]}"}
        assert all(entry["target"] == "svc1" for entry in audit)
        scrape = http.get("/metrics").text
        assert 'key_id="svc1"' in scrape
        assert plaintext not in scrape and new_key not in scrape

    records = ledger(gateway)
    # Admin calls are not billable: every record is a chat completion.
    assert {r["route"] for r in records} == {"/v1/chat/completions"}
    assert [r["key_id"] for r in records if r["status"] == 200] == ["svc1"] * 3
    database = gateway.config.usage.store.removeprefix("sqlite:///")
    dump = "\n".join(sqlite3.connect(database).iterdump())
    assert plaintext not in dump and new_key not in dump


def test_non_admin_gets_403_and_no_key_401(gateway: RunningGateway) -> None:
    with gateway.http() as http:
        for method, path in [
            ("GET", "/v1/admin/keys"),
            ("POST", "/v1/admin/keys"),
            ("GET", "/v1/admin/teams"),
            ("GET", "/v1/admin/audit"),
            ("DELETE", "/v1/admin/keys/app1"),
        ]:
            denied = http.request(method, path, headers={"Authorization": f"Bearer {API_KEY}"})
            assert denied.status_code == 403, (method, path)
            assert denied.json()["error"]["type"] == "permission_error"
            assert http.request(method, path).status_code == 401


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"id": "has space"}, "id"),
        ({"rpm": 0}, "rpm"),
        ({"budget_usd_monthly": -1}, "budget_usd_monthly"),
        ({"budget": 5}, "budget"),
        ({"models": ["no-such-model"]}, "models"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "2999-01-01T00:00:00"}, "expires_at"),
    ],
)
def test_bad_create_bodies_are_400_naming_the_field(
    gateway: RunningGateway, body: dict[str, object], param: str
) -> None:
    with gateway.http() as http:
        response = http.post("/v1/admin/keys", headers=ADMIN, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_config_keys_and_teams_are_read_only(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(
        auth={
            "keys": [{"id": "app1", "key_sha256": sha(API_KEY), "team": "search"}],
            "teams": {"search": {"rpm": 10}},
            "admin_keys_sha256": [sha(ADMIN_KEY)],
        }
    )
    with gateway.http() as http:
        assert http.post("/v1/admin/keys", headers=ADMIN, json={"id": "app1"}).status_code == 409
        assert http.patch("/v1/admin/keys/app1", headers=ADMIN, json={"rpm": 5}).status_code == 409
        assert http.post("/v1/admin/keys/app1/rotate", headers=ADMIN).status_code == 409
        assert http.delete("/v1/admin/keys/app1", headers=ADMIN).status_code == 409
        assert http.put("/v1/admin/teams/search", headers=ADMIN, json={}).status_code == 409
        assert http.get("/v1/admin/keys/nope", headers=ADMIN).status_code == 404
        assert http.delete("/v1/admin/keys/nope", headers=ADMIN).status_code == 404


def test_expired_key_is_refused(gateway: RunningGateway) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    with gateway.http() as http:
        created = http.post(
            "/v1/admin/keys", headers=ADMIN, json={"id": "brief", "expires_at": soon}
        ).json()
    assert chat(gateway, created["key"])
    deadline = datetime.fromisoformat(soon) + timedelta(milliseconds=100)
    import time

    time.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()))
    with pytest.raises(openai.AuthenticationError):
        chat(gateway, created["key"])


def test_team_put_limits_and_allow_list_bind_its_keys(gateway: RunningGateway) -> None:
    with gateway.http() as http:
        team = http.put(
            "/v1/admin/teams/mobile",
            headers=ADMIN,
            json={"rpm": 1, "models": ["nova-micro"]},
        )
        assert team.status_code == 200
        assert team.json() == {
            "team": "mobile",
            "rpm": 1,
            "tpm": None,
            "budget_usd_monthly": None,
            "models": ["nova-micro"],
            "source": "store",
        }
        teams = http.get("/v1/admin/teams", headers=ADMIN).json()["data"]
        assert [t["team"] for t in teams] == ["mobile"]
        key = http.post("/v1/admin/keys", headers=ADMIN, json={"team": "mobile"}).json()["key"]
    client = gateway.client(key)
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(
            model="claude-3-5-sonnet", messages=[{"role": "user", "content": "hi"}]
        )
    client.chat.completions.create(model="nova-micro", messages=[{"role": "user", "content": "a"}])
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="nova-micro", messages=[{"role": "user", "content": "b"}]
        )


def test_a_sighup_style_runtime_swap_keeps_stored_keys(gateway: RunningGateway) -> None:
    """A reload rebuilds the runtime from the config alone; the refresher lays the stored
    keys over it again without waiting for the next poll of the store."""
    import time

    from gateway.pipeline.runtime import Runtime

    with gateway.http() as http:
        key = http.post("/v1/admin/keys", headers=ADMIN, json={"id": "kept"}).json()["key"]
    running = gateway.app.state.gateway
    running.runtime = Runtime.build(running.runtime.config)
    assert running.runtime.keys.lookup(key) is None
    deadline = time.monotonic() + 2
    while running.runtime.keys.lookup(key) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running.runtime.keys.lookup(key) is not None
    assert chat(gateway, key)


def test_csv_download_neutralizes_formula_cells(start_gateway: GatewayFactory) -> None:
    evil = "sk-formula"
    gateway = start_gateway(
        auth={
            "keys": [{"id": "f1", "key_sha256": sha(evil), "user": '=HYPERLINK("x")'}],
            "admin_keys_sha256": [sha(ADMIN_KEY)],
        }
    )
    chat(gateway, evil)
    import time

    deadline = time.monotonic() + 10
    with gateway.http() as http:
        while True:
            text = http.get("/v1/usage?group_by=user&format=csv", headers=ADMIN).text
            if "HYPERLINK" in text or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert "\n'=HYPERLINK" in text.replace('"', "")


@pytest.mark.parametrize(
    ("team", "body", "param"),
    [
        ("bad%20name", {}, "team"),
        ("ok", {"rpm": -1}, "rpm"),
        ("ok", {"models": ["nope"]}, "models"),
        ("ok", {"colour": "red"}, "colour"),
    ],
)
def test_bad_team_puts_are_400(
    gateway: RunningGateway, team: str, body: dict[str, object], param: str
) -> None:
    with gateway.http() as http:
        response = http.put(f"/v1/admin/teams/{team}", headers=ADMIN, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_bad_json_and_bad_patch_are_400(gateway: RunningGateway) -> None:
    with gateway.http() as http:
        created = http.post("/v1/admin/keys", headers=ADMIN, json={"id": "p1"})
        assert created.status_code == 201
        broken = http.post(
            "/v1/admin/keys", headers={**ADMIN, "content-type": "application/json"}, content=b"{"
        )
        assert broken.status_code == 400
        assert (
            http.patch("/v1/admin/keys/p1", headers=ADMIN, json={"disabled": None}).status_code
            == 400
        )
        assert (
            http.patch(
                "/v1/admin/keys/p1", headers=ADMIN, json={"key_sha256": "0" * 64}
            ).status_code
            == 400
        )
        assert http.patch("/v1/admin/keys/nope", headers=ADMIN, json={"rpm": 2}).status_code == 404


def test_an_unreachable_key_store_keeps_the_loaded_keys(
    start_gateway: GatewayFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio
    import logging
    import time

    auth = base_config("http://unused", tmp_path)["auth"]
    auth["refresh_s"] = 0.2
    gateway = start_gateway(auth=auth)
    with gateway.http() as http:
        key = http.post("/v1/admin/keys", headers=ADMIN, json={"id": "sturdy"}).json()["key"]
    refresher = gateway.app.state.key_refresher
    loop = gateway.server.loop
    assert loop is not None
    with caplog.at_level(logging.WARNING, logger="gateway.keys"):
        asyncio.run_coroutine_threadsafe(refresher.store.close(), loop).result(10)
        deadline = time.monotonic() + 5
        while "key store unreachable" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "key store unreachable" in caplog.text
    assert key not in caplog.text
    assert chat(gateway, key)  # served from the keys loaded before the outage
