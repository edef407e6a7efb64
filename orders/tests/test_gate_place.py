"""Placing through the gate: the idempotency identity covers the whole body, legs included;
the ticket's confirm step; stale unconfirmed orders block nothing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders.models import Order
from tradedesk.broker.sim import market

from .validation_support import desk_order

pytestmark = pytest.mark.django_db

D = Decimal


ASK_AT_START = market.quote("AAPL", timezone.now()).ask_price


def bracket(take_profit: Decimal, **extra) -> dict:
    ask = ASK_AT_START  # one price for every body of a test: quotes move each second
    return {
        "symbol": "AAPL",
        "qty": "1",
        "side": "buy",
        "type": "market",
        "order_class": "bracket",
        "client_order_id": "bracket-1",
        "take_profit": {"limit_price": str((ask * take_profit).quantize(D("0.01")))},
        "stop_loss": {"stop_price": str((ask * D("0.8")).quantize(D("0.01")))},
    } | extra


def test_the_same_client_order_id_with_another_take_profit_is_409(api):
    first = api.post("/api/v1/orders/", bracket(D("1.2")), format="json")
    assert first.status_code == 201, first.content

    same = api.post("/api/v1/orders/", bracket(D("1.2")), format="json")
    other_leg = api.post("/api/v1/orders/", bracket(D("1.3")), format="json")
    no_stop = api.post("/api/v1/orders/", bracket(D("1.2"), stop_loss=None), format="json")

    assert same.status_code == 200
    assert same.json()["order"]["id"] == first.json()["order"]["id"]
    for conflict in (other_leg, no_stop):
        assert conflict.status_code == 409
        assert conflict.json()["code"] == "client_order_id_conflict"
    assert Order.objects.filter(parent__isnull=True).count() == 1


def test_one_number_written_two_ways_is_the_same_body(api):
    body = bracket(D("1.2"))
    assert api.post("/api/v1/orders/", body, format="json").status_code == 201
    price = body["take_profit"]["limit_price"]
    again = body | {"qty": "1.000", "take_profit": {"limit_price": price + "0"}}
    assert api.post("/api/v1/orders/", again, format="json").status_code == 200


def test_the_ticket_button_is_the_consent_to_its_warnings(client, trader):
    client.force_login(trader)
    order = {
        "symbol": "AAPL",
        "qty": "1",
        "side": "buy",
        "type": "limit",
        "limit_price": "1",
        "time_in_force": "gtc",
    }

    asked = client.post("/orders/new/", order)

    assert asked.status_code == 200
    page = asked.content.decode()
    # Nothing was placed, and the page says so beside a button that sends the consent.
    assert "was not placed" in page
    assert 'name="confirm_warnings" value="1">Place order anyway</button>' in page
    assert 'type="checkbox"' not in page.split('id="confirm-box"')[1].split("</form>")[0]
    assert not Order.objects.exists()

    # What clicking "Place order anyway" sends: the form plus the button's name and value.
    placed = client.post("/orders/new/", order | {"confirm_warnings": "1"})
    assert placed.status_code == 302
    assert Order.objects.get(user=trader).limit_price == D("1")


@pytest.mark.parametrize(("age", "blocks"), [(30, True), (120, False)])
def test_an_unconfirmed_order_blocks_the_wash_trade_guard_only_until_the_timeout(
    api, trader, settings, age, blocks
):
    settings.ORDER_PENDING_TIMEOUT = 60
    account = trader.broker_accounts.get()
    pending = desk_order(account, side="sell", status="pending_new", qty=D("1"))
    Order.objects.filter(pk=pending.pk).update(created_at=timezone.now() - timedelta(seconds=age))

    response = api.post(
        "/api/v1/orders/",
        {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market"},
        format="json",
    )

    if blocks:
        assert response.status_code == 400
        assert [e["code"] for e in response.json()["errors"]] == ["wash_trade"]
    else:
        assert response.status_code == 201, response.content


def test_a_look_at_the_account_that_started_before_a_command_is_not_reused(trader):
    from accounts.services import broker_for
    from orders import validation

    account = trader.broker_accounts.get()
    inner = broker_for(account)
    looks = []

    class Broker:
        provider = inner.provider

        def get_account_and_positions(self):
            looks.append(1)
            if len(looks) == 1:
                # Another request's order reaches the broker while this look is under way.
                validation.forget_account_state(account)
            return inner.get_account_and_positions()

    validation.cached_account_state(Broker(), account)
    validation.cached_account_state(Broker(), account)  # stale: asked again
    validation.cached_account_state(Broker(), account)  # fresh now: from the cache
    assert len(looks) == 2
