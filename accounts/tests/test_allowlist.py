"""Per-user IP allowlists on every door (API, pages, login, stream), behind and not behind a
trusted proxy; the user edits theirs on /accounts/security/, an operator in the admin."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts import services
from conftest import client_for

pytestmark = pytest.mark.django_db

PASSWORD = "s3cret-Passw0rd!"  # the make_user fixture's default
OFFICE = "203.0.113.0/24"


@pytest.fixture
def listed(trader):
    trader.ip_allowlist = f"{OFFICE}\n2001:db8::/32"
    trader.save()
    return trader


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("203.0.113.9", True),
        ("2001:db8:5::1", True),
        ("::ffff:203.0.113.9", True),
        ("198.51.100.1", False),
        ("2001:db9::1", False),
        ("", False),
        ("garbage", False),
    ],
)
def test_an_allowlist_admits_exactly_its_networks(listed, address, allowed):
    assert services.address_allowed(listed, address) is allowed


def test_an_empty_allowlist_admits_everyone(trader):
    assert services.address_allowed(trader, "198.51.100.1")
    assert services.address_in_allowlist("", "")


# --- The API ----------------------------------------------------------------------------------
def test_the_api_refuses_a_token_from_outside_the_allowlist(listed, settings):
    settings.TRUSTED_PROXIES = []
    api = client_for(listed)
    assert api.get("/api/v1/broker-accounts/", REMOTE_ADDR="203.0.113.9").status_code == 200
    refused = api.get("/api/v1/broker-accounts/", REMOTE_ADDR="198.51.100.1")
    assert refused.status_code == 403
    assert refused.json()["code"] == "address_not_allowed"
    # Not behind a trusted proxy: a forged X-Forwarded-For naming the office is ignored.
    spoofed = api.get(
        "/api/v1/broker-accounts/", REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_FOR="203.0.113.9"
    )
    assert spoofed.status_code == 403


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_one_checked(listed, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    api = client_for(listed)
    proxied = {"REMOTE_ADDR": "10.0.0.2"}
    ok = api.get("/api/v1/broker-accounts/", HTTP_X_FORWARDED_FOR="203.0.113.9", **proxied)
    assert ok.status_code == 200
    outside = api.get("/api/v1/broker-accounts/", HTTP_X_FORWARDED_FOR="198.51.100.1", **proxied)
    assert outside.status_code == 403
    # The client put the office in front; the proxy appended the real address.
    forged = api.get(
        "/api/v1/broker-accounts/", HTTP_X_FORWARDED_FOR="203.0.113.9, 198.51.100.1", **proxied
    )
    assert forged.status_code == 403


def test_the_token_endpoint_refuses_outside_the_allowlist_without_trying_the_password(
    listed, settings
):
    settings.LOGIN_FAILURES_PER_USERNAME = "1/900s"
    client = APIClient()
    body = {"username": "alice", "password": "wrong-password"}
    for _ in range(3):
        refused = client.post(
            "/api/v1/auth/token/", body, format="json", REMOTE_ADDR="198.51.100.1"
        )
        assert refused.status_code == 403
        assert refused.json()["code"] == "address_not_allowed"
    # Nothing was counted against the username, and inside the list the password works.
    body["password"] = PASSWORD
    inside = client.post("/api/v1/auth/token/", body, format="json", REMOTE_ADDR="203.0.113.9")
    assert inside.status_code == 200


# --- The pages --------------------------------------------------------------------------------
def test_the_pages_refuse_a_session_from_outside_the_allowlist(listed):
    browser = Client()
    browser.force_login(listed)
    assert browser.get("/", REMOTE_ADDR="203.0.113.9").status_code == 200
    refused = browser.get("/", REMOTE_ADDR="198.51.100.1")
    assert refused.status_code == 403
    assert "address_not_allowed" in refused.content.decode()
    assert "198.51.100.1" in refused.content.decode()
    assert browser.get("/admin/", REMOTE_ADDR="198.51.100.1").status_code == 403
    spoofed = browser.get("/", REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert spoofed.status_code == 403


def test_the_login_page_refuses_outside_the_allowlist(listed):
    browser = Client(REMOTE_ADDR="198.51.100.1")
    response = browser.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403
    assert "address_not_allowed" in response.content.decode()
    assert browser.get("/")["Location"].startswith("/accounts/login/")
    inside = Client(REMOTE_ADDR="203.0.113.9")
    assert (
        inside.post("/accounts/login/", {"username": "alice", "password": PASSWORD})["Location"]
        == "/"
    )


def test_a_user_edits_their_allowlist_and_cannot_lock_themselves_out(trader):
    browser = Client(REMOTE_ADDR="203.0.113.9")
    browser.force_login(trader)
    lockout = browser.post(
        "/accounts/security/", {"action": "allowlist", "ip_allowlist": "198.51.100.0/24"}
    )
    assert lockout.status_code == 400
    assert "lock you out" in lockout.context["allowlist_form"].errors["ip_allowlist"][0]
    bad = browser.post(
        "/accounts/security/", {"action": "allowlist", "ip_allowlist": "203.0.113.0/24, nope"}
    )
    assert bad.status_code == 400
    assert "'nope' is not an IP address" in bad.context["allowlist_form"].errors["ip_allowlist"][0]
    trader.refresh_from_db()
    assert trader.ip_allowlist == ""
    saved = browser.post(
        "/accounts/security/",
        {"action": "allowlist", "ip_allowlist": "203.0.113.7/24, 2001:db8::1"},
    )
    assert saved.status_code == 302
    trader.refresh_from_db()
    assert trader.ip_allowlist == "203.0.113.0/24\n2001:db8::1/128"
    cleared = browser.post("/accounts/security/", {"action": "allowlist", "ip_allowlist": ""})
    assert cleared.status_code == 302
    trader.refresh_from_db()
    assert trader.ip_allowlist == ""


def test_an_operator_sets_the_allowlist_and_the_2fa_flag_in_the_admin(trader, make_user):
    admin = make_user("root", is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(admin)
    url = f"/admin/accounts/user/{trader.pk}/change/"
    form = {
        "username": "alice",
        "is_active": "on",
        "date_joined_0": "2026-01-02",
        "date_joined_1": "09:30:00",
        "two_factor_required": "on",
        "_save": "Save",
    }
    bad = browser.post(url, {**form, "ip_allowlist": "10.0.0.0/8\n10.0.0.0/99"})
    assert bad.status_code == 200
    assert "not an IP address" in bad.content.decode()
    trader.refresh_from_db()
    assert (trader.ip_allowlist, trader.two_factor_required) == ("", False)
    saved = browser.post(url, {**form, "ip_allowlist": "10.0.0.0/8\n2001:db8::/32"})
    assert saved.status_code == 302
    trader.refresh_from_db()
    assert trader.two_factor_required is True
    assert services.address_allowed(trader, "10.1.2.3")
    assert not services.address_allowed(trader, "203.0.113.9")
