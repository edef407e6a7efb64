"""Broker keys are checked against Alpaca's format on link, before any broker call: a clear
400 naming the field (a 127-character key id and a non-Latin-1 secret were a 500)."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts import services

pytestmark = pytest.mark.django_db

KEY_ID = "PKTESTKEY00000001234"
SECRET = "alpacaSecret0000000000000000000000000042"


@pytest.fixture
def no_broker_call(monkeypatch):
    def refuse(credentials):
        raise AssertionError("no broker call for keys that cannot be Alpaca's")

    monkeypatch.setattr(services, "get_broker", refuse)


@pytest.mark.parametrize(
    ("key_id", "secret", "field"),
    [
        pytest.param("P" * 127, "ключ" * 10, "key_id", id="long-key-id-non-latin1-secret"),
        pytest.param(KEY_ID, "ключ" * 10, "secret", id="non-latin1-secret"),
        pytest.param(KEY_ID, SECRET[:20] + "\n" + SECRET[20:], "secret", id="newline-in-secret"),
        pytest.param(KEY_ID + "\r\nX-Evil: 1", SECRET, "key_id", id="header-injection"),
        pytest.param("pk" + KEY_ID[2:].lower(), SECRET, "key_id", id="lower-case-key-id"),
        pytest.param("PK1", SECRET, "key_id", id="short-key-id"),
        pytest.param(KEY_ID, "s" * 300, "secret", id="long-secret"),
        pytest.param(KEY_ID, "short", "secret", id="short-secret"),
    ],
)
@pytest.mark.parametrize("encoding", ["multipart", "json"])
def test_malformed_keys_are_a_400_naming_the_field(
    api, trader, no_broker_call, key_id, secret, field, encoding
):
    body = {"provider": "alpaca", "label": "A", "paper": True, "key_id": key_id, "secret": secret}
    response = api.post("/api/v1/broker-accounts/", body, format=encoding)
    assert response.status_code == 400, response.content
    assert field in str(response.json())
    assert not trader.broker_accounts.filter(provider="alpaca").exists()


def test_the_page_names_the_field_too(trader, no_broker_call):
    browser = Client()
    browser.force_login(trader)
    response = browser.post(
        "/accounts/brokers/",
        {"label": "A", "key_id": KEY_ID, "secret": "ключ" * 10, "mode": "paper"},
    )
    assert response.status_code == 400
    assert list(response.context["form"].errors) == ["secret"]


def test_well_formed_keys_reach_the_broker(monkeypatch, trader):
    verified = []

    class Broker:
        def get_account(self):
            verified.append(True)

    monkeypatch.setattr(services, "get_broker", lambda credentials: Broker())
    account = services.link_broker_account(
        user=trader, provider="alpaca", label="A", paper=True, key_id=KEY_ID, secret=SECRET
    )
    assert verified == [True]
    assert (account.key_id, account.secret) == (KEY_ID, SECRET)
