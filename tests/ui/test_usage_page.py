"""The usage page in a real browser (headless Chromium) against a real gateway over HTTP.

Traffic made here with the `openai` SDK must show on the page with the ledger's numbers;
a key created in the page must work over HTTP, and once revoked in the page get 401; a
non-admin key sees only its own usage and no key management. Set
`GATEWAY_UI_SCREENSHOTS=docs/images` to refresh the README's screenshots.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.surfaces.ui import CSP
from tests.harness import (
    ADMIN_KEY,
    API_KEY,
    OTHER_KEY,
    GatewayFactory,
    RunningGateway,
    base_config,
)

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::ResourceWarning")]

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
SCREENSHOTS = os.environ.get("GATEWAY_UI_SCREENSHOTS")


def usage_by_team(gateway: RunningGateway, key: str, expect_requests: int) -> dict[str, Any]:
    """The ledger's per-team rows once `expect_requests` records are in (bounded wait)."""
    deadline = time.monotonic() + 10
    with gateway.http() as http:
        while True:
            rows = http.get(
                "/v1/usage?group_by=team", headers={"Authorization": f"Bearer {key}"}
            ).json()["data"]
            if sum(r["requests"] for r in rows) >= expect_requests or time.monotonic() > deadline:
                return {r["team"]: r for r in rows}
            time.sleep(0.05)


def ask(gateway: RunningGateway, key: str, text: str = "hello there") -> None:
    gateway.client(key).chat.completions.create(
        model="claude-3-5-sonnet", messages=[{"role": "user", "content": text}]
    )


@pytest.fixture
def busy_gateway(start_gateway: GatewayFactory, tmp_path: Path) -> RunningGateway:
    auth = base_config("http://unused", tmp_path)["auth"]
    auth["teams"] = {"search": {"budget_usd_monthly": 5}}
    gateway = start_gateway(auth=auth)
    ask(gateway, API_KEY)
    ask(gateway, API_KEY, "a longer question that costs a little more")
    ask(gateway, OTHER_KEY)
    return gateway


def shoot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=True)


def sign_in(page: Any, url: str, key: str) -> None:
    page.goto(url + "/ui/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def test_admin_sees_ledger_numbers_creates_and_revokes_a_key(
    busy_gateway: RunningGateway, browser: Any
) -> None:
    from playwright.sync_api import expect

    gateway = busy_gateway
    teams = usage_by_team(gateway, ADMIN_KEY, expect_requests=3)
    assert set(teams) == {"search", "ads"} and teams["search"]["requests"] == 2

    context = browser.new_context(viewport={"width": 1200, "height": 900}, accept_downloads=True)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    response = page.goto(gateway.url + "/ui/")
    assert response is not None and response.headers["content-security-policy"] == CSP
    sign_in(page, gateway.url, ADMIN_KEY)

    for team, row in teams.items():
        spend = f"${float(row['cost_usd']):.4f}"
        line = page.locator("#team-table tr", has_text=team)
        expect(line).to_contain_text(spend)
        expect(line).to_contain_text(str(row["requests"]))
    expect(page.locator("#budget-table tr", has_text="search")).to_contain_text("$5.0000")
    expect(page.locator("#key-table")).to_contain_text("app1")
    shoot(page, "usage-page.png")

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download CSV").click()
    csv_text = Path(download_info.value.path()).read_text()
    assert csv_text.startswith("day,team,key_id,model,requests") and "search" in csv_text

    page.get_by_role("button", name="Keys").click()
    form = page.locator("#new-key-form")
    form.get_by_label("Key id").fill("browser1")
    form.get_by_label("Team", exact=True).fill("search")
    form.get_by_label("RPM").fill("50")
    form.get_by_role("button", name="Create").click()
    expect(page.locator("#new-key-id")).to_have_text("browser1")
    new_key = page.locator("#new-key-value").inner_text()
    assert new_key.startswith("bgw-")
    expect(page.get_by_role("button", name="Copy")).to_be_visible()
    row = page.locator("#keys-table tr", has_text="browser1")
    expect(row).to_contain_text("active")
    expect(page.locator("#audit-table")).to_contain_text("key.create")
    shoot(page, "keys-page.png")

    ask(gateway, new_key)  # the key made in the page works over HTTP at once

    # Edit its limits, disable and enable it, all in the page.
    row.get_by_role("button", name="Edit").click()
    edit = page.locator("#edit-key-form")
    expect(edit.get_by_label("Key to edit")).to_have_value("browser1")
    edit.get_by_label("New RPM").fill("75")
    edit.get_by_role("button", name="Save changes").click()
    expect(row.locator("td").nth(4)).to_have_text("75")
    row.get_by_role("button", name="Disable").click()
    expect(row).to_contain_text("disabled")
    with pytest.raises(openai.AuthenticationError):
        ask(gateway, new_key)
    row.get_by_role("button", name="Enable").click()
    expect(row).to_contain_text("active")
    ask(gateway, new_key)

    # Rotate (confirmed): the page shows the new key once; the old one is refused.
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Rotate").click()
    expect(page.locator("#new-key-value")).not_to_have_text(new_key)
    rotated = page.locator("#new-key-value").inner_text()
    with pytest.raises(openai.AuthenticationError):
        ask(gateway, new_key)
    ask(gateway, rotated)
    new_key = rotated

    # A dismissed confirmation changes nothing.
    page.once("dialog", lambda dialog: dialog.dismiss())
    row.get_by_role("button", name="Revoke").click()
    expect(row).to_contain_text("active")
    ask(gateway, new_key)

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke").click()
    expect(row).to_contain_text("revoked")
    with pytest.raises(openai.AuthenticationError):
        ask(gateway, new_key)
    expect(page.locator("#audit-table")).to_contain_text("key.revoke")

    # Team limits, edited in the page, are what the API reports.
    page.get_by_role("button", name="Teams").click()
    team_form = page.locator("#team-form")
    team_form.get_by_label("Team").fill("mobile")
    team_form.get_by_label("RPM").fill("7")
    team_form.get_by_label("Monthly budget (USD)").fill("12.5")
    team_form.get_by_role("button", name="Save team").click()
    expect(page.locator("#teams-table tr", has_text="mobile")).to_contain_text("12.5")
    with gateway.http() as http:
        listed = http.get("/v1/admin/teams", headers=ADMIN).json()["data"]
    mobile = next(t for t in listed if t["team"] == "mobile")
    assert (mobile["rpm"], mobile["budget_usd_monthly"], mobile["source"]) == (7, 12.5, "store")

    # The page holds keys in session storage only: no cookie, nothing in the HTML or URL.
    assert context.cookies() == []
    # The sign-in key is not left in the DOM (the field is cleared); the new key is shown
    # once, by design, as text in the page and nowhere in what the server sends.
    assert ADMIN_KEY not in page.content()
    with gateway.http() as http:
        served = http.get("/ui/").text + http.get("/ui/static/app.js").text
    assert ADMIN_KEY not in served and new_key not in served
    assert ADMIN_KEY not in page.url
    assert page.evaluate("sessionStorage.length") == 1
    assert problems == []
    context.close()


def test_a_non_admin_key_sees_only_its_own_usage(
    busy_gateway: RunningGateway, browser: Any
) -> None:
    from playwright.sync_api import expect

    own = usage_by_team(busy_gateway, OTHER_KEY, expect_requests=1)
    assert list(own) == ["ads"]
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, busy_gateway.url, OTHER_KEY)
    expect(page.locator("#who-text")).to_have_text("Signed in: your own usage")
    line = page.locator("#team-table tr", has_text="ads")
    expect(line).to_contain_text(f"${float(own['ads']['cost_usd']):.4f}")
    expect(page.locator("#team-table")).not_to_contain_text("search")
    expect(page.get_by_role("button", name="Keys")).to_be_hidden()
    assert page.locator("#budget-section").is_hidden()
    context.close()


def test_a_wrong_key_is_refused_on_the_page(busy_gateway: RunningGateway, browser: Any) -> None:
    from playwright.sync_api import expect

    context = browser.new_context()
    page = context.new_page()
    sign_in(page, busy_gateway.url, "sk-not-a-key")
    expect(page.locator("#sign-in-error")).to_have_text("That key was not accepted.")
    assert page.evaluate("sessionStorage.length") == 0
    context.close()


def test_page_and_assets_load_without_a_key_and_data_needs_one(gateway: RunningGateway) -> None:
    with httpx.Client(base_url=gateway.url) as http:
        for path in ("/ui/", "/ui/static/app.js", "/ui/static/vendor/chart.umd.js"):
            response = http.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-security-policy"] == CSP
        assert http.get("/ui", follow_redirects=False).status_code == 308
        html = http.get("/ui/").text
        assert "https://" not in html and "http://" not in html  # nothing from a CDN
        assert http.get("/v1/usage").status_code == 401
        assert http.get("/v1/admin/keys").status_code == 401
