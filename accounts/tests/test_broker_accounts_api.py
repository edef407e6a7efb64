"""/api/v1/broker-accounts/: list (no secrets), link a paper account, unlink (history stays)."""

from __future__ import annotations

import pytest

from accounts.models import BrokerAccount
from accounts.selectors import default_broker_account
from orders.models import Order

pytestmark = pytest.mark.django_db

KEY_ID = "PKLIVEKEYID0001WXYZ"
SECRET = "alpaca-secret-do-not-leak-4d2c"


@pytest.fixture
def alpaca_account(trader):
    return BrokerAccount.objects.create(
        user=trader, provider="alpaca", paper=True, label="Alpaca", key_id=KEY_ID, secret=SECRET
    )


def test_the_list_shows_the_last_four_of_the_key_and_never_the_secret(api, alpaca_account):
    response = api.get("/api/v1/broker-accounts/")
    assert response.status_code == 200
    body = response.json()
    assert [a["provider"] for a in body] == ["sim", "alpaca"]
    alpaca = body[1]
    assert alpaca["key_id_last4"] == "WXYZ"
    assert set(alpaca) == {
        "id",
        "provider",
        "paper",
        "label",
        "key_id_last4",
        "is_default",
        "created_at",
    }
    text = response.content.decode()
    assert SECRET not in text
    assert KEY_ID not in text


def test_the_list_holds_only_the_callers_accounts(api, other_trader):
    ids = {a["id"] for a in api.get("/api/v1/broker-accounts/").json()}
    assert default_broker_account(other_trader).pk not in ids
    assert len(ids) == 1


def test_linking_a_paper_exchange_account_gives_a_fresh_funded_account(api, trader):
    response = api.post(
        "/api/v1/broker-accounts/", {"provider": "sim", "label": "Second book"}, format="json"
    )
    assert response.status_code == 201
    created = response.json()
    assert (created["provider"], created["paper"], created["label"]) == ("sim", True, "Second book")
    assert created["is_default"] is False
    account = BrokerAccount.objects.get(pk=created["id"])
    assert account.key_id != default_broker_account(trader).key_id
    funded = api.get(f"/api/v1/account/?broker_account={account.pk}").json()
    assert funded["cash"] == "100000.00"


def test_linking_a_new_default_moves_the_flag(api, trader):
    old_default = default_broker_account(trader)
    response = api.post(
        "/api/v1/broker-accounts/",
        {"provider": "sim", "label": "Main", "is_default": True},
        format="json",
    )
    assert response.status_code == 201
    defaults = BrokerAccount.objects.filter(user=trader, is_default=True)
    assert [a.pk for a in defaults] == [response.json()["id"]]
    old_default.refresh_from_db()
    assert old_default.is_default is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"provider": "sim", "label": "Live?", "paper": False}, "paper"),
        ({"provider": "etrade", "label": "x"}, "provider"),
        ({"provider": "alpaca", "label": "x", "key_id": "PK1"}, "secret"),
        ({"provider": "sim"}, "label"),
    ],
)
def test_linking_with_bad_input_is_400_and_creates_nothing(api, trader, body, field):
    response = api.post("/api/v1/broker-accounts/", body, format="json")
    assert response.status_code == 400
    assert field in response.content.decode()
    assert BrokerAccount.objects.filter(user=trader).count() == 1


def test_unlinking_hides_the_account_but_keeps_its_orders(api, trader, alpaca_account):
    paper = default_broker_account(trader)
    placed = api.post(
        "/api/v1/orders/",
        {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"},
        format="json",
    )
    assert placed.status_code == 201
    response = api.delete(f"/api/v1/broker-accounts/{paper.pk}/")
    assert response.status_code == 204
    listed = api.get("/api/v1/broker-accounts/").json()
    assert [a["id"] for a in listed] == [alpaca_account.pk]
    # The other account inherits the default; the unlinked one's orders stay in history.
    assert listed[0]["is_default"] is True
    order = Order.objects.get(pk=placed.json()["order"]["id"])
    assert order.broker_account_id == paper.pk
    assert api.get(f"/api/v1/orders/{order.pk}/").status_code == 200
    assert api.delete(f"/api/v1/broker-accounts/{paper.pk}/").status_code == 404


@pytest.mark.parametrize("account_id", ["other", "999999", "abc", str(10**30)])
def test_unlinking_anything_but_ones_own_account_is_404(api, other_trader, account_id):
    theirs = default_broker_account(other_trader)
    target = theirs.pk if account_id == "other" else account_id
    response = api.delete(f"/api/v1/broker-accounts/{target}/")
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.is_active and theirs.is_default
