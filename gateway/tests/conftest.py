"""Fixtures for the gateway: a trader's API key on their paper account, and a Django client
that speaks Alpaca's headers."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts.selectors import default_broker_account
from gateway import services


class AlpacaClient:
    """Alpaca's REST as a bot sends it: JSON bodies, the key in APCA-API-* headers."""

    def __init__(self, key_id: str, secret: str, **extra):
        self.client = Client(**extra)
        self.headers = {"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret}

    def request(self, method: str, path: str, body=None, *, raw: bytes | None = None, **query):
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        call = getattr(self.client, method.lower())
        if method == "GET":
            return call(f"/alpaca{path}", query, headers=self.headers)
        suffix = ("?" + "&".join(f"{k}={v}" for k, v in query.items())) if query else ""
        return call(
            f"/alpaca{path}{suffix}",
            data=data,
            content_type="application/json",
            headers=self.headers,
        )

    def get(self, path, **query):
        return self.request("GET", path, **query)

    def post(self, path, body=None, **kwargs):
        return self.request("POST", path, body, **kwargs)

    def patch(self, path, body=None, **kwargs):
        return self.request("PATCH", path, body, **kwargs)

    def delete(self, path, **query):
        return self.request("DELETE", path, **query)


@pytest.fixture
def issued(trader):
    return services.create_api_key(
        user=trader, broker_account=default_broker_account(trader), label="bot"
    )


@pytest.fixture
def bot(issued) -> AlpacaClient:
    return AlpacaClient(issued.api_key.key_id, issued.secret)


@pytest.fixture
def other_bot(other_trader) -> AlpacaClient:
    other = services.create_api_key(
        user=other_trader, broker_account=default_broker_account(other_trader), label="theirs"
    )
    return AlpacaClient(other.api_key.key_id, other.secret)
