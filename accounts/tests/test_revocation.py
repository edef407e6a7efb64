"""Revocation: logout blacklists a refresh token; a password change, an operator's "revoke
sessions" and a deactivation end every session, refresh token and access token of the user."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts import services
from accounts.models import User

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "s3cret-Passw0rd!"


def log_in_everywhere(user) -> dict:
    """What an attacker could hold: a token pair from the API and a logged-in browser."""
    pair = APIClient().post(
        "/api/v1/auth/token/", {"username": user.username, "password": PASSWORD}, format="json"
    )
    assert pair.status_code == 200, pair.content
    browser = Client()
    browser.force_login(user)
    assert browser.get("/accounts/brokers/").status_code == 200
    return {**pair.json(), "browser": browser}


def api_with(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def refresh(token: str):
    return APIClient().post("/api/v1/auth/token/refresh/", {"refresh": token}, format="json")


def assert_everything_ended(held: dict) -> None:
    assert refresh(held["refresh"]).status_code == 401
    assert api_with(held["access"]).get("/api/v1/orders/").status_code == 401
    page = held["browser"].get("/accounts/brokers/")
    assert page.status_code == 302 and page["Location"].startswith("/accounts/login/")


@pytest.fixture
def operator(make_user):
    operator = make_user("operator", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(operator)
    return client


def test_logout_blacklists_the_refresh_token(trader):
    held = log_in_everywhere(trader)
    response = APIClient().post("/api/v1/auth/logout/", {"refresh": held["refresh"]}, format="json")
    assert response.status_code == 204
    refused = refresh(held["refresh"])
    assert refused.status_code == 401
    assert refused.json()["code"] == "token_not_valid"


@pytest.mark.parametrize("body", [{}, {"refresh": "not-a-jwt"}, {"refresh": ["x"]}])
def test_logout_with_junk_is_a_4xx(body):
    response = APIClient().post("/api/v1/auth/logout/", body, format="json")
    assert response.status_code in (400, 401)


def test_logout_with_an_access_token_in_place_of_the_refresh_is_refused(trader):
    held = log_in_everywhere(trader)
    response = APIClient().post("/api/v1/auth/logout/", {"refresh": held["access"]}, format="json")
    assert response.status_code == 401
    assert refresh(held["refresh"]).status_code == 200  # nothing was blacklisted


def test_a_password_change_in_admin_ends_every_session_and_token(trader, operator):
    held = log_in_everywhere(trader)
    response = operator.post(
        f"/admin/accounts/user/{trader.pk}/password/",
        {"password1": "n3w-Passw0rd!x", "password2": "n3w-Passw0rd!x", "usable_password": "true"},
    )
    assert response.status_code == 302, response.content
    assert_everything_ended(held)


def test_a_password_change_anywhere_ends_every_session_and_token(trader):
    held = log_in_everywhere(trader)
    trader.set_password("n3w-Passw0rd!x")
    trader.save()
    assert_everything_ended(held)


def test_the_operators_revoke_sessions_action(trader, other_trader, operator):
    held, bystander = log_in_everywhere(trader), log_in_everywhere(other_trader)
    response = operator.post(
        "/admin/accounts/user/",
        {"action": "revoke_sessions", "_selected_action": [trader.pk]},
        follow=True,
    )
    assert "Revoked the sessions, tokens and streams of 1 user" in response.content.decode()
    assert_everything_ended(held)
    # Another user's sessions and tokens are untouched.
    assert refresh(bystander["refresh"]).status_code == 200
    assert api_with(bystander["access"]).get("/api/v1/orders/").status_code == 200
    assert bystander["browser"].get("/accounts/brokers/").status_code == 200


def test_deactivation_ends_every_session_and_token(trader, operator):
    held = log_in_everywhere(trader)
    user = User.objects.get(pk=trader.pk)
    user.is_active = False
    user.save()
    assert_everything_ended(held)
    # Reactivated, the old tokens stay dead (revoked, not merely refused while inactive).
    user.is_active = True
    user.save()
    assert refresh(held["refresh"]).status_code == 401
    assert api_with(held["access"]).get("/api/v1/orders/").status_code == 401


def test_logging_in_does_not_revoke_anything(trader):
    held = log_in_everywhere(trader)
    log_in_everywhere(User.objects.get(pk=trader.pk))  # last_login saved, hash maybe upgraded
    assert api_with(held["access"]).get("/api/v1/orders/").status_code == 200
    assert User.objects.get(pk=trader.pk).tokens_valid_after is None


def test_tokens_issued_after_the_revocation_work(trader):
    services.revoke_sessions(trader)
    # A second later (the revocation's own second counts as before it: see token_revoked).
    User.objects.filter(pk=trader.pk).update(
        tokens_valid_after=timezone.now() - timedelta(seconds=2)
    )
    held = log_in_everywhere(User.objects.get(pk=trader.pk))
    assert api_with(held["access"]).get("/api/v1/orders/").status_code == 200
    assert refresh(held["refresh"]).status_code == 200


def test_the_revocation_second_counts_as_before_it(trader):
    at = timezone.now().replace(microsecond=500_000)
    trader.tokens_valid_after = at
    second = int(at.timestamp())
    assert services.token_revoked(trader, second - 1)
    assert services.token_revoked(trader, second)
    assert not services.token_revoked(trader, second + 1)


def test_refreshing_a_token_of_a_deleted_user_is_a_401(trader):
    token = str(RefreshToken.for_user(trader))
    User.objects.filter(pk=trader.pk).delete()
    response = refresh(token)
    assert response.status_code == 401
    assert "No active account" in response.json()["detail"]


def test_the_stream_token_is_refused_by_the_api(trader):
    client = Client()
    client.force_login(trader)
    token = client.post("/accounts/stream-token/").json()["access"]
    response = api_with(token).get("/api/v1/orders/")
    assert response.status_code == 401
    assert api_with(token).post("/api/v1/orders/", {}, format="json").status_code == 401
    assert refresh(token).status_code == 401


def test_a_stream_token_opens_the_stream_once_and_no_revoked_user(trader):
    token = services.stream_token_for(trader)
    user, _ = services.stream_token_user(token)
    assert user == trader
    assert services.stream_token_user(token) is None  # replayed from a leaked URL
    services.revoke_sessions(trader)
    assert services.stream_token_user(services.stream_token_for(trader)) is None


def change_password_on_the_page(user, old_password: str):
    page = Client()
    page.force_login(user)
    new = "n3w-Passw0rd!x"
    response = page.post(
        "/accounts/password/",
        {"old_password": old_password, "new_password1": new, "new_password2": new},
        follow=True,
    )
    return page, response


def test_the_password_change_page_ends_every_other_session_and_token(trader):
    held = log_in_everywhere(trader)
    page, response = change_password_on_the_page(trader, PASSWORD)
    assert "Password changed" in response.content.decode()
    assert_everything_ended(held)
    assert page.get("/accounts/brokers/").status_code == 200  # the session that changed it


def test_the_password_change_page_refuses_a_wrong_old_password(trader):
    held = log_in_everywhere(trader)
    _, response = change_password_on_the_page(trader, "wrong")
    assert response.status_code == 200 and response.context["form"].errors
    assert refresh(held["refresh"]).status_code == 200
