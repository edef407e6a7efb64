"""The broker accounts page: list, link Alpaca (live needs a confirmation), default, remove."""

from __future__ import annotations

import pytest

from accounts import services
from accounts.models import BrokerAccount
from tradedesk.broker.errors import AuthenticationFailed, BrokerUnavailable

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(client, trader):
    client.force_login(trader)
    return client


class FakeAlpaca:
    """Stands in for Alpaca's account check (the Alpaca adapter has its own loopback tests)."""

    def __init__(self, error=None):
        self.error = error

    def get_account(self):
        if self.error:
            raise self.error
        return object()


@pytest.fixture
def alpaca(monkeypatch):
    fake = FakeAlpaca()
    monkeypatch.setattr(services, "get_broker", lambda credentials: fake)
    return fake


LINK = {
    "label": "My Alpaca",
    "key_id": "PKTESTKEY00000001234",
    "secret": "s3cr3t0000000000000000000000000000000000",
    "mode": "paper",
}


def test_brokers_page_lists_the_traders_accounts_without_secrets(browser, trader, alpaca):
    browser.post("/accounts/brokers/", LINK)
    response = browser.get("/accounts/brokers/")
    labels = [a.label for a in response.context["accounts"]]
    assert labels == ["Paper exchange", "My Alpaca"]
    html = response.content.decode()
    assert "…1234" in html
    assert LINK["key_id"] not in html and LINK["secret"] not in html


def test_linking_a_paper_alpaca_account(browser, trader, alpaca):
    response = browser.post("/accounts/brokers/", LINK | {"is_default": "on"}, follow=True)
    assert "Linked My Alpaca" in response.content.decode()
    account = trader.broker_accounts.get(provider="alpaca")
    assert (account.paper, account.is_default, account.secret) == (True, True, LINK["secret"])


def test_a_live_account_needs_the_explicit_confirmation(browser, trader, alpaca):
    response = browser.post("/accounts/brokers/", LINK | {"mode": "live"})
    assert response.status_code == 400
    assert "confirm it explicitly" in response.content.decode()
    assert not trader.broker_accounts.filter(provider="alpaca").exists()

    browser.post("/accounts/brokers/", LINK | {"mode": "live", "confirm_live": "on"})
    assert trader.broker_accounts.get(provider="alpaca").paper is False


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (AuthenticationFailed("no"), 400, "Alpaca refused these keys."),
        (BrokerUnavailable("timed out"), 503, "Alpaca is unreachable right now: timed out"),
    ],
)
def test_linking_reports_what_alpaca_said(browser, trader, alpaca, error, status, message):
    alpaca.error = error
    response = browser.post("/accounts/brokers/", LINK)
    assert response.status_code == status
    assert message in response.content.decode()
    assert trader.broker_accounts.count() == 1


def test_linking_with_missing_fields_is_a_400(browser, trader):
    response = browser.post("/accounts/brokers/", {"label": "x", "mode": "paper"})
    assert response.status_code == 400
    assert set(response.context["form"].errors) == {"key_id", "secret"}
    assert trader.broker_accounts.count() == 1


def test_choose_the_default_and_remove_an_account(browser, trader, alpaca):
    browser.post("/accounts/brokers/", LINK)
    alpaca_account = trader.broker_accounts.get(provider="alpaca")
    browser.post(f"/accounts/brokers/{alpaca_account.pk}/default/")
    assert trader.broker_accounts.get(is_default=True) == alpaca_account

    browser.post(f"/accounts/brokers/{alpaca_account.pk}/remove/")
    alpaca_account.refresh_from_db()
    assert (alpaca_account.is_active, alpaca_account.is_default) == (False, False)
    assert trader.broker_accounts.get(is_default=True).provider == "sim"


def test_someone_elses_account_is_404_and_unchanged(browser, other_trader):
    theirs = other_trader.broker_accounts.get()
    assert browser.post(f"/accounts/brokers/{theirs.pk}/default/").status_code == 404
    assert browser.post(f"/accounts/brokers/{theirs.pk}/remove/").status_code == 404
    assert BrokerAccount.objects.get(pk=theirs.pk).is_active
    assert browser.get(f"/accounts/brokers/{theirs.pk}/remove/").status_code == 405
