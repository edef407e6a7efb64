"""One brute-force limit for the login page and the token endpoint (per username and per
address), and a signup limit per address: the attacks of issue 17, now refused."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.api import TokenThrottle
from accounts.models import User

pytestmark = pytest.mark.django_db

PASSWORD = "s3cret-Passw0rd!"  # the make_user fixture's default
TOKEN_URL = "/api/v1/auth/token/"


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.LOGIN_FAILURES_PER_USERNAME = "5/900s"
    settings.LOGIN_FAILURES_PER_ADDRESS = "20/900s"
    settings.SIGNUP_RATE = "5/hour"
    settings.TRUSTED_PROXIES = []


def obtain(client, password: str, username: str = "alice", **extra):
    return client.post(
        TOKEN_URL, {"username": username, "password": password}, format="json", **extra
    )


def page_login(client: Client, password: str, username: str = "alice", **extra):
    return client.post("/accounts/login/", {"username": username, "password": password}, **extra)


def test_40_wrong_passwords_with_spoofed_forwarded_for_then_the_right_one_are_refused(
    trader, monkeypatch
):
    # The endpoint's DRF throttle (20/min, now by the real address) would answer 429 too from
    # the 21st request: out of the way, so the login limit is what answers.
    monkeypatch.setattr(TokenThrottle, "allow_request", lambda self, request, view: True)
    client = APIClient()
    statuses = [
        obtain(client, f"wrong-{n}", HTTP_X_FORWARDED_FOR=f"10.{n}.0.1").status_code
        for n in range(40)
    ]
    assert statuses == [401] * 5 + [429] * 35
    locked = obtain(client, PASSWORD, HTTP_X_FORWARDED_FOR="10.99.0.1")
    assert locked.status_code == 429
    assert locked.json()["code"] == "login_rate_limited"
    assert "try again in" in locked.json()["detail"]
    assert 0 < int(locked["Retry-After"]) <= 900
    assert "access" not in locked.json()


def test_the_token_endpoints_drf_throttle_is_not_dodged_by_a_spoofed_header(settings, db):
    settings.LOGIN_FAILURES_PER_USERNAME = settings.LOGIN_FAILURES_PER_ADDRESS = ""
    client = APIClient()
    statuses = [
        obtain(client, "x", username=f"u{n}", HTTP_X_FORWARDED_FOR=f"10.{n}.0.1").status_code
        for n in range(21)
    ]
    assert statuses == [401] * 20 + [429]  # TOKEN_RATE_LIMIT, 20/min


def test_60_wrong_passwords_on_the_login_page_then_the_right_one_are_refused(trader):
    browser = Client()
    statuses = [page_login(browser, f"wrong-{n}").status_code for n in range(60)]
    assert statuses == [200] * 5 + [429] * 55
    response = page_login(browser, PASSWORD)
    assert response.status_code == 429
    assert "Too many failed logins; try again in" in response.context["form"].non_field_errors()[0]
    assert browser.get("/").status_code == 302  # still logged out


def test_the_page_and_the_token_endpoint_share_one_counter(trader):
    for n in range(3):
        assert page_login(Client(), f"wrong-{n}").status_code == 200
    for n in range(2):
        assert obtain(APIClient(), f"wrong-api-{n}").status_code == 401
    assert obtain(APIClient(), PASSWORD).status_code == 429
    assert page_login(Client(), PASSWORD).status_code == 429


def test_a_success_clears_the_usernames_failures(trader):
    client = APIClient()
    for n in range(4):
        assert obtain(client, f"wrong-{n}").status_code == 401
    assert obtain(client, PASSWORD).status_code == 200
    for n in range(4):
        assert obtain(client, f"wrong-again-{n}").status_code == 401
    assert obtain(client, PASSWORD).status_code == 200


def test_one_address_guessing_many_usernames_meets_the_address_limit(make_user):
    make_user("victim")
    client = APIClient()
    for n in range(20):
        assert (
            obtain(client, "guess", username=f"user{n}", REMOTE_ADDR="203.0.113.9").status_code
            == 401
        )
    refused = obtain(client, PASSWORD, username="victim", REMOTE_ADDR="203.0.113.9")
    assert refused.status_code == 429
    # Another address (and the victim's own username) is untouched.
    assert (
        obtain(client, PASSWORD, username="victim", REMOTE_ADDR="198.51.100.1").status_code == 200
    )


def test_an_ipv6_host_is_counted_by_its_64(make_user):
    make_user("victim")
    client = APIClient()
    for n in range(20):
        address = f"2001:db8:1:2::{n + 1:x}"
        assert obtain(client, "guess", username=f"u{n}", REMOTE_ADDR=address).status_code == 401
    assert (
        obtain(client, PASSWORD, username="victim", REMOTE_ADDR="2001:db8:1:2::ffff").status_code
        == 429
    )
    assert (
        obtain(client, PASSWORD, username="victim", REMOTE_ADDR="2001:db8:1:3::1").status_code
        == 200
    )


def test_15_signups_in_a_row_from_one_address_are_cut_at_the_rate(db):
    statuses = []
    for n in range(15):
        response = Client().post(
            "/accounts/signup/",
            {
                "username": f"newbie{n}",
                "password1": "Tr4ding-desk-pw",
                "password2": "Tr4ding-desk-pw",
            },
        )
        statuses.append(response.status_code)
    assert statuses == [302] * 5 + [429] * 10
    assert "Too many new accounts" in response.context["form"].non_field_errors()[0]
    assert User.objects.filter(username__startswith="newbie").count() == 5
    # Another address may still sign up.
    other = Client(REMOTE_ADDR="198.51.100.20").post(
        "/accounts/signup/",
        {"username": "elsewhere", "password1": "Tr4ding-desk-pw", "password2": "Tr4ding-desk-pw"},
    )
    assert other.status_code == 302


def test_a_signup_form_with_errors_does_not_use_the_allowance(db):
    for _ in range(10):
        response = Client().post(
            "/accounts/signup/",
            {"username": "x", "password1": "Tr4ding-desk-pw", "password2": "mismatch-9"},
        )
        assert response.status_code == 200
    ok = Client().post(
        "/accounts/signup/",
        {"username": "real", "password1": "Tr4ding-desk-pw", "password2": "Tr4ding-desk-pw"},
    )
    assert ok.status_code == 302


def test_the_admin_login_form_is_no_door_around_the_limit(trader):
    response = Client().get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=%2Fadmin%2F"
    browser = Client()
    browser.force_login(trader)  # not staff
    assert browser.get("/admin/login/?next=/admin/").status_code == 403


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_burst_of_simultaneous_guesses_gets_exactly_the_limit_through(trader, settings):
    from django.db import connection, connections

    from accounts import services
    from conftest import require_service
    from tradedesk.ratelimit import RateLimitExceeded

    require_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")
    require_service("Redis (REDIS_URL)", bool(settings.REDIS_URL))
    threads, start = 30, threading.Barrier(30)
    outcomes: list[str] = []

    def guess(n: int) -> None:
        try:
            start.wait(20)
            services.authenticate_login(
                username="alice", password=f"wrong-{n}", otp="", address=f"10.0.{n}.1"
            )
        except services.LoginRefused as refused:
            outcomes.append(refused.code)
        except RateLimitExceeded:
            outcomes.append("rate_limited")
        finally:
            connections.close_all()

    workers = [threading.Thread(target=guess, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert Counter(outcomes) == {"invalid_credentials": 5, "rate_limited": 25}
