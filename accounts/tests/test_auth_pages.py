"""Sign up, log in and log out: Django auth pages behind CSRF protection."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import BrokerAccount, User

pytestmark = pytest.mark.django_db

PASSWORD = "s3cret-Passw0rd!"  # the make_user fixture's default


@pytest.fixture
def browser() -> Client:
    return Client(enforce_csrf_checks=True)


def csrf_token(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.cookies["csrftoken"].value


def test_signup_creates_a_logged_in_trader_with_a_paper_account(browser):
    token = csrf_token(browser, "/accounts/signup/")
    response = browser.post(
        "/accounts/signup/",
        {
            "csrfmiddlewaretoken": token,
            "username": "newbie",
            "email": "newbie@example.com",
            "password1": "Tr4ding-desk-pw",
            "password2": "Tr4ding-desk-pw",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == "/"
    user = User.objects.get(username="newbie")
    assert BrokerAccount.objects.filter(user=user, provider="sim", is_default=True).count() == 1
    assert browser.get("/").context["user"] == user


def test_signup_with_mismatched_passwords_shows_the_form_again(browser):
    token = csrf_token(browser, "/accounts/signup/")
    response = browser.post(
        "/accounts/signup/",
        {
            "csrfmiddlewaretoken": token,
            "username": "newbie",
            "password1": "Tr4ding-desk-pw",
            "password2": "something-else-9",
        },
    )
    assert response.status_code == 200
    assert response.context["form"].errors["password2"]
    assert not User.objects.filter(username="newbie").exists()


def test_login_with_the_csrf_token_logs_in_and_goes_home(browser, trader):
    token = csrf_token(browser, "/accounts/login/")
    response = browser.post(
        "/accounts/login/",
        {"csrfmiddlewaretoken": token, "username": "alice", "password": PASSWORD},
    )
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert browser.get("/").status_code == 200


def test_login_without_the_csrf_token_is_refused(browser, trader):
    response = browser.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403
    assert browser.get("/").status_code == 302


def test_login_with_a_wrong_password_shows_an_error_and_stays_logged_out(browser, trader):
    token = csrf_token(browser, "/accounts/login/")
    response = browser.post(
        "/accounts/login/",
        {"csrfmiddlewaretoken": token, "username": "alice", "password": "wrong-password"},
    )
    assert response.status_code == 200
    assert "didn't match" in response.context["form"].non_field_errors()[0]
    assert browser.get("/")["Location"] == "/accounts/login/"


def test_logout_is_a_post_and_ends_the_session(browser, trader):
    browser.force_login(trader)
    token = csrf_token(browser, "/orders/new/")
    assert browser.get("/accounts/logout/").status_code == 405
    response = browser.post("/accounts/logout/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert browser.get("/")["Location"] == "/accounts/login/"


def test_a_logged_in_trader_is_sent_home_from_login_and_signup(client, trader):
    client.force_login(trader)
    assert client.get("/accounts/login/")["Location"] == "/"
    assert client.get("/accounts/signup/")["Location"] == "/"
