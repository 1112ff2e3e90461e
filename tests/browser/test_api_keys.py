"""Device API keys in a real browser: create one, see it once, use it, revoke it."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.factories import PASSWORD, AccountFactory, UserFactory

pytestmark = pytest.mark.browser

KEY = re.compile(r"^pbk_[0-9a-f]{10}_[A-Za-z0-9_-]{43}$")


@pytest.fixture
def owner(transactional_db):
    return UserFactory(email="owner@booths.example", account=AccountFactory(name="Booths Ltd"))


def log_in(page: Page, email: str) -> None:
    page.goto("/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/billing/licenses/$"))


def api_status(page: Page, key: str) -> int:
    """What a booth holding this key gets from GET /api/v1/balance."""
    return page.request.get("/api/v1/balance", headers={"Authorization": f"Bearer {key}"}).status


def test_owner_creates_a_key_sees_it_once_and_revokes_it(page: Page, owner):
    log_in(page, owner.email)
    page.get_by_role("link", name="Device API keys").click()
    page.wait_for_url(re.compile(r"/billing/api-keys/$"))
    expect(page.get_by_role("heading", name="Device API keys")).to_be_visible()
    expect(page.get_by_text("No API keys yet.")).to_be_visible()

    page.get_by_label("Key name").fill("Booth 7")
    page.get_by_role("button", name="Create API key").click()
    shown = page.get_by_label(re.compile("Your new API key"))
    expect(shown).to_be_visible()
    key = shown.input_value()
    assert KEY.match(key), key
    expect(page.get_by_text("It is shown only this once")).to_be_visible()
    prefix = key.split("_")[1]
    row = page.get_by_role("row").filter(has_text="Booth 7")
    expect(row).to_contain_text(f"pbk_{prefix}_…")
    expect(row).to_contain_text("Active")
    assert api_status(page, key) == 200

    # After a reload the key is gone for good; only its prefix is left to recognise it by.
    page.reload()
    expect(page.get_by_label(re.compile("Your new API key"))).to_have_count(0)
    assert key not in page.content()
    expect(row).to_contain_text(f"pbk_{prefix}_…")

    row.get_by_role("link", name="Revoke API key Booth 7").click()
    dialog = page.get_by_role("dialog", name="Revoke API key")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Booth 7")
    dialog.get_by_role("button", name="Revoke key").click()
    expect(page.get_by_text("API key “Booth 7” is revoked.")).to_be_visible()
    expect(row).to_contain_text("Revoked")
    expect(row.get_by_role("link", name="Revoke API key Booth 7")).to_have_count(0)
    assert api_status(page, key) == 401


def test_keys_are_created_and_revoked_without_javascript_too(no_js_context, owner):
    page = no_js_context.new_page()
    log_in(page, owner.email)
    page.goto("/billing/api-keys/")
    page.get_by_label("Key name").fill("Kiosk")
    page.get_by_role("button", name="Create API key").click()
    key = page.get_by_label(re.compile("Your new API key")).input_value()
    assert KEY.match(key), key

    page.goto("/billing/api-keys/")
    assert key not in page.content()
    page.get_by_role("link", name="Revoke API key Kiosk").click()
    expect(page.get_by_role("heading", name="Revoke API key")).to_be_visible()
    page.get_by_role("button", name="Revoke key").click()
    expect(page.get_by_text("API key “Kiosk” is revoked.")).to_be_visible()
    assert api_status(page, key) == 401
