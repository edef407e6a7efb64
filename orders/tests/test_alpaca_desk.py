"""The desk on Alpaca: link an account (verified on the loopback fake), then trade through
the same services and API as on the paper exchange — only the broker differs."""

from decimal import Decimal

import pytest

from accounts.models import BrokerAccount
from orders.models import Order
from tradedesk.broker.tests.alpaca_fakes import KEY_ID, SECRET

pytestmark = pytest.mark.django_db


@pytest.fixture
def alpaca_account(api, alpaca_settings):
    response = api.post(
        "/api/v1/broker-accounts/",
        {
            "provider": "alpaca",
            "label": "My Alpaca",
            "paper": True,
            "key_id": KEY_ID,
            "secret": SECRET,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_linking_verifies_the_keys_with_alpaca_and_never_returns_the_secret(
    api, alpaca_account, fake_alpaca
):
    assert fake_alpaca.requests_to("GET", "/v2/account"), "the keys were not verified"
    assert alpaca_account["key_id_last4"] == KEY_ID[-4:]
    assert SECRET not in str(alpaca_account)
    listed = api.get("/api/v1/broker-accounts/").content.decode()
    assert SECRET not in listed and KEY_ID not in listed
    stored = BrokerAccount.objects.get(pk=alpaca_account["id"])
    assert stored.secret == SECRET  # decrypts for the desk's own use


def test_keys_alpaca_refuses_are_not_saved(api, alpaca_settings, trader):
    response = api.post(
        "/api/v1/broker-accounts/",
        {"provider": "alpaca", "label": "Bad", "paper": True, "key_id": KEY_ID, "secret": "w" * 40},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "invalid_credentials"
    assert not trader.broker_accounts.filter(provider="alpaca").exists()


def test_a_live_account_needs_explicit_confirmation(api, alpaca_settings, trader):
    body = {
        "provider": "alpaca",
        "label": "Live",
        "paper": False,
        "key_id": KEY_ID,
        "secret": SECRET,
    }
    refused = api.post("/api/v1/broker-accounts/", body, format="json")
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["code"] == "live_confirmation_required"
    confirmed = api.post("/api/v1/broker-accounts/", body | {"confirm_live": True}, format="json")
    assert confirmed.status_code == 201
    assert confirmed.json()["paper"] is False


def test_an_order_placed_on_alpaca_is_sent_with_its_client_order_id_and_stored(
    api, alpaca_account, fake_alpaca
):
    placed = _place_resting(api, alpaca_account)
    sent = fake_alpaca.requests_to("POST", "/v2/orders")[-1].body
    assert sent["client_order_id"] == placed["client_order_id"]
    assert sent["symbol"] == "AAPL" and float(sent["qty"]) == 2
    assert placed["broker_order_id"] in fake_alpaca.orders
    assert placed["status"] == "accepted"

    order = Order.objects.get(pk=placed["id"])
    assert order.broker_account_id == alpaca_account["id"]
    assert order.limit_price == Decimal("150")
    listed = api.get("/api/v1/orders/", {"symbol": "AAPL"}).json()["results"]
    assert [row["id"] for row in listed] == [placed["id"]]


def test_account_and_positions_come_from_alpaca(api, alpaca_account):
    query = {"broker_account": alpaca_account["id"]}
    account = api.get("/api/v1/account/", query).json()
    assert account["cash"] == "122086.5"
    assert account["equity"] == "123346.11"
    positions = api.get("/api/v1/positions/", query).json()
    assert positions and all(Decimal(p["qty"]) for p in positions)


def test_an_alpaca_outage_is_a_503_not_a_500(api, alpaca_account, fake_alpaca):
    fake_alpaca.fail_next(500, {"message": "internal"})
    response = api.get("/api/v1/account/", {"broker_account": alpaca_account["id"]})
    assert response.status_code == 503
    assert response["Retry-After"]


def _place_resting(api, alpaca_account) -> dict:
    response = api.post(
        "/api/v1/orders/",
        {
            "symbol": "AAPL",
            "qty": "2",
            "side": "buy",
            "type": "limit",
            "limit_price": "150",
            "time_in_force": "gtc",
            "broker_account": alpaca_account["id"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()["order"]


def test_cancel_goes_to_alpaca_and_is_recorded(api, alpaca_account, fake_alpaca):
    placed = _place_resting(api, alpaca_account)
    response = api.delete(f"/api/v1/orders/{placed['id']}/")
    assert response.status_code == 200, response.content
    assert fake_alpaca.requests_to("DELETE", f"/v2/orders/{placed['broker_order_id']}")
    assert fake_alpaca.orders[placed["broker_order_id"]]["status"] == "canceled"
    order = Order.objects.get(pk=placed["id"])
    assert order.status == "canceled"
    assert "cancel_requested" in [e.event for e in order.events.all()]


def test_replace_goes_to_alpaca_and_links_old_and_new(api, alpaca_account, fake_alpaca):
    placed = _place_resting(api, alpaca_account)
    response = api.patch(f"/api/v1/orders/{placed['id']}/", {"limit_price": "155"}, format="json")
    assert response.status_code == 200, response.content
    new = response.json()
    assert new["broker_order_id"] != placed["broker_order_id"]
    assert new["replaces"] == placed["broker_order_id"]
    assert Decimal(new["limit_price"]) == Decimal("155")
    old = Order.objects.get(pk=placed["id"])
    assert (old.status, old.replaced_by) == ("replaced", new["broker_order_id"])
    assert fake_alpaca.orders[placed["broker_order_id"]]["status"] == "replaced"


def test_a_closed_alpaca_order_cannot_be_canceled(api, alpaca_account, fake_alpaca):
    placed = _place_resting(api, alpaca_account)
    fake_alpaca.fill(placed["broker_order_id"], "150")
    response = api.delete(f"/api/v1/orders/{placed['id']}/")
    assert response.status_code == 422
    assert Order.objects.get(pk=placed["id"]).status == "filled"  # the desk caught up


def test_keys_revoked_at_alpaca_give_a_clear_503(api, alpaca_account, fake_alpaca):
    fake_alpaca.secret = "rotated-elsewhere"
    response = api.get("/api/v1/account/", {"broker_account": alpaca_account["id"]})
    assert response.status_code == 503
    assert response.json()["code"] == "broker_credentials_refused"
