"""JWT for API clients: short-lived access, rotating refresh tokens with a blacklist."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

PASSWORD = "s3cret-Passw0rd!"  # the make_user fixture's default


def obtain(client: APIClient, username: str, password: str):
    return client.post(
        "/api/v1/auth/token/", {"username": username, "password": password}, format="json"
    )


def bearer(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def test_a_trader_obtains_tokens_and_the_access_token_opens_the_api(trader):
    response = obtain(APIClient(), "alice", PASSWORD)
    assert response.status_code == 200
    tokens = response.json()
    assert set(tokens) == {"access", "refresh"}
    assert bearer(tokens["access"]).get("/api/v1/account/").status_code == 200


def test_refresh_rotates_and_blacklists_the_old_refresh_token(trader):
    client = APIClient()
    old_refresh = obtain(client, "alice", PASSWORD).json()["refresh"]
    response = client.post("/api/v1/auth/token/refresh/", {"refresh": old_refresh}, format="json")
    assert response.status_code == 200
    rotated = response.json()
    assert rotated["refresh"] != old_refresh
    assert bearer(rotated["access"]).get("/api/v1/positions/").status_code == 200
    # The old refresh token is spent.
    again = client.post("/api/v1/auth/token/refresh/", {"refresh": old_refresh}, format="json")
    assert again.status_code == 401
    # The new one still works (once).
    newer = client.post(
        "/api/v1/auth/token/refresh/", {"refresh": rotated["refresh"]}, format="json"
    )
    assert newer.status_code == 200


@pytest.mark.parametrize(
    ("username", "password"), [("alice", "wrong-password"), ("nobody", PASSWORD)]
)
def test_bad_credentials_are_401_without_tokens(trader, username, password):
    response = obtain(APIClient(), username, password)
    assert response.status_code == 401
    body = response.json()
    assert body["detail"]
    assert "access" not in body and "refresh" not in body


def test_an_inactive_user_gets_no_tokens_and_their_access_token_stops_working(trader):
    access = obtain(APIClient(), "alice", PASSWORD).json()["access"]
    trader.is_active = False
    trader.save()
    assert obtain(APIClient(), "alice", PASSWORD).status_code == 401
    assert bearer(access).get("/api/v1/account/").status_code == 401


def test_an_access_token_is_not_a_refresh_token(trader):
    tokens = obtain(APIClient(), "alice", PASSWORD).json()
    response = APIClient().post(
        "/api/v1/auth/token/refresh/", {"refresh": tokens["access"]}, format="json"
    )
    assert response.status_code == 401


def test_a_refresh_token_is_not_an_access_token(trader):
    tokens = obtain(APIClient(), "alice", PASSWORD).json()
    assert bearer(tokens["refresh"]).get("/api/v1/account/").status_code == 401


def test_token_request_without_fields_is_400(db):
    response = APIClient().post("/api/v1/auth/token/", {}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"username", "password"}
    blank = APIClient().post(
        "/api/v1/auth/token/", {"username": "alice", "password": ""}, format="json"
    )
    assert blank.status_code == 400
