"""/accounts/api-keys/ in headless Chromium: issue a key (the secret shown once), revoke it."""

from __future__ import annotations

import pytest

from conftest import log_in, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_issue_and_revoke_a_key_on_the_page(page, trader):
    log_in(page, "alice")
    page.get_by_role("link", name="API keys").click()
    assert page.get_by_role("heading", name="API keys").is_visible()
    page.get_by_label("Label").fill("momentum bot")
    page.get_by_label("IP allowlist").fill("127.0.0.1/32")
    page.get_by_label("Rate limit").fill("100/min")
    page.get_by_label("Max notional ($)").fill("25000")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key-secret").inner_text()
    key_id = page.locator("#new-key-id").inner_text()
    assert len(secret) >= 40 and key_id.startswith("TD")
    row = page.locator("tbody tr", has_text="momentum bot")
    assert "127.0.0.1/32" in row.inner_text() and "max $25,000" in row.inner_text()
    shot(page, "api-keys")

    page.reload()  # the secret is never shown again
    assert page.locator("#new-key-secret").count() == 0 and secret not in page.content()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke momentum bot").click()
    assert "revoked" in page.locator("tbody tr", has_text="momentum bot").inner_text()
