"""Operators cancel open orders from the admin, through the same service as the API."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from conftest import place_resting_buy
from orders.models import Order
from tradedesk.broker.errors import BrokerUnavailable
from tradedesk.broker.sim.exchange import SimBroker

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(make_user, client):
    user = make_user("operator", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


def cancel_action(client, orders):
    return client.post(
        "/admin/orders/order/",
        {"action": "cancel_open_orders", "_selected_action": [o.pk for o in orders]},
        follow=True,
    )


def test_cancel_selected_open_orders(client, operator, place, resting_order):
    filled = Order.objects.get(pk=place().json()["order"]["id"])
    resting = Order.objects.get(pk=resting_order["id"])

    response = cancel_action(client, [filled, resting])

    assert response.status_code == 200
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Canceled 1 order(s)."]
    resting.refresh_from_db()
    filled.refresh_from_db()
    assert (resting.status, filled.status) == ("canceled", "filled")
    audit = resting.events.get(event="cancel_requested")
    assert (audit.source, audit.actor) == ("admin", operator)


def test_cancel_reports_the_orders_that_failed(monkeypatch, client, operator, resting_order):
    def down(self, order_id):
        raise BrokerUnavailable("timeout")

    monkeypatch.setattr(SimBroker, "cancel_order", down)

    response = cancel_action(client, [Order.objects.get(pk=resting_order["id"])])

    shown = [str(m) for m in get_messages(response.wsgi_request)]
    assert shown[0] == "Canceled 0 order(s)."
    assert shown[1].startswith("1 could not be canceled:")
    assert "timeout" in shown[1]
    assert Order.objects.get(pk=resting_order["id"]).status == "new"


def test_a_trader_cannot_run_admin_actions(client, trader, resting_order):
    client.force_login(trader)
    cancel_action(client, [Order.objects.get(pk=resting_order["id"])])
    assert Order.objects.get(pk=resting_order["id"]).status == "new"


def test_a_halts_cancel_action_cancels_only_the_orders_it_covers(
    client, operator, trader, other_trader, resting_order
):
    from orders.models import TradingHalt

    others = place_resting_buy(other_trader, symbol="MSFT", limit="10")
    halt = TradingHalt.objects.create(scope="user", user=trader, mode="halted", reason="review")

    response = client.post(
        "/admin/orders/tradinghalt/",
        {"action": "cancel_covered_orders", "_selected_action": [halt.pk]},
        follow=True,
    )

    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Canceled 1 order(s)."]
    assert Order.objects.get(pk=resting_order["id"]).status == "canceled"
    assert Order.objects.get(pk=others.pk).status == "new"
