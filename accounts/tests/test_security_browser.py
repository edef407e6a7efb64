"""/accounts/security/ in headless Chromium: enrol with the QR page, then log in in two steps."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from conftest import PASSWORD, log_in, totp_code

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_enrol_on_the_security_page_then_log_in_with_a_code(page, trader, tmp_path):
    log_in(page, "alice")
    page.get_by_role("link", name="Security").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/accounts/security/")
    qr = page.locator(".qr svg")
    assert qr.is_visible()
    assert qr.bounding_box()["width"] >= 150  # big enough to scan
    page.screenshot(path=str(tmp_path / "security-enrol.png"), full_page=True)

    device = TOTPDevice.objects.get(user=trader, confirmed=False)
    page.get_by_label("Code from the app").fill(totp_code(device))
    page.get_by_role("button", name="Turn on two-factor authentication").click()
    codes = page.get_by_role("list", name="Recovery codes").locator("li")
    assert codes.count() == 10
    page.screenshot(path=str(tmp_path / "security-recovery-codes.png"), full_page=True)

    page.get_by_role("button", name="Log out").click()
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/accounts/login/code/")
    page.screenshot(path=str(tmp_path / "login-code.png"), full_page=True)
    page.get_by_label("Code").fill(totp_code(device))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/")
    assert page.get_by_role("heading", name="Dashboard").is_visible()
