"""Cancel (DELETE) and replace (PATCH) through the API and the services, with their audit trail."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders import services
from orders.models import Order, OrderEvent
from tradedesk.broker import types
from tradedesk.broker.errors import BrokerUnavailable, OrderRejected, RateLimited
from tradedesk.broker.sim.exchange import SimBroker

pytestmark = pytest.mark.django_db


def plain(value) -> str:
    return format(Decimal(value).normalize(), "f")


def url(order) -> str:
    return f"/api/v1/orders/{order['id']}/"


def test_cancel_an_open_order(api, trader, resting_order):
    response = api.delete(url(resting_order))

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "canceled"
    order = Order.objects.get(pk=resting_order["id"])
    assert order.status == "canceled"
    assert order.canceled_at is not None
    audit = order.events.get(event="cancel_requested")
    assert (audit.source, audit.actor, audit.detail) == ("api", trader, {"previous_status": "new"})
    assert order.events.filter(event="canceled", actor=trader).exists()
    broker = SimBroker(order.broker_account.key_id)
    assert broker.get_order(order.broker_order_id).status == "canceled"


def test_replace_makes_a_new_order_and_closes_the_old_one(api, trader, resting_order):
    new_price = (Decimal(resting_order["limit_price"]) - 1).quantize(Decimal("0.01"))

    response = api.patch(url(resting_order), {"qty": "3", "limit_price": str(new_price)})

    assert response.status_code == 200, response.content
    new = Order.objects.get(pk=response.json()["id"])
    old = Order.objects.get(pk=resting_order["id"])
    assert new.pk != old.pk
    assert (new.qty, new.limit_price, new.status) == (Decimal(3), new_price, "new")
    assert new.replaces == old.broker_order_id
    assert (old.status, old.replaced_by) == ("replaced", new.broker_order_id)
    assert old.replaced_at is not None
    replaced = old.events.get(event="replaced")
    assert replaced.actor == trader
    assert replaced.source == "api"
    assert replaced.detail["changes"] == {
        "qty": {"from": "1", "to": "3"},
        "limit_price": {"from": plain(resting_order["limit_price"]), "to": plain(new_price)},
    }
    assert new.events.get().detail["replaces"] == old.broker_order_id
    broker = SimBroker(old.broker_account.key_id)
    assert broker.get_order(old.broker_order_id).status == "replaced"


def test_replace_time_in_force_keeps_the_rest(api, resting_order):
    response = api.patch(url(resting_order), {"time_in_force": "day"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["time_in_force"] == "day"
    assert response.json()["limit_price"] == resting_order["limit_price"]


@pytest.mark.parametrize("method", ["delete", "patch"])
def test_a_closed_order_cannot_be_canceled_or_replaced(api, place, method):
    filled = place().json()["order"]
    response = getattr(api, method)(url(filled), {"qty": "2"}, format="json")

    assert response.status_code == 422
    assert response.json()["code"] == "order_closed"
    assert "filled" in response.json()["detail"]
    assert Order.objects.count() == 1
    assert not OrderEvent.objects.filter(event__in=["cancel_requested", "replaced"]).exists()


def test_an_order_closed_at_the_broker_but_open_here_is_422_and_catches_up(api, resting_order):
    order = Order.objects.get(pk=resting_order["id"])
    SimBroker(order.broker_account.key_id).cancel_order(order.broker_order_id)

    response = api.delete(url(resting_order))

    assert response.status_code == 422
    assert response.json()["code"] == "not_cancelable"
    order.refresh_from_db()
    assert order.status == "canceled"


@pytest.mark.parametrize(
    ("method", "body"), [("get", None), ("delete", None), ("patch", {"qty": "5"})]
)
def test_another_users_order_is_404_for_read_cancel_and_replace(
    other_api, resting_order, method, body
):
    response = getattr(other_api, method)(url(resting_order), body, format="json")

    assert response.status_code == 404
    order = Order.objects.get(pk=resting_order["id"])
    assert (order.status, order.qty) == ("new", Decimal(1))
    assert Order.objects.count() == 1


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"qty": "0"},
        {"qty": "-1"},
        {"limit_price": "NaN"},
        {"qty": "1e400"},
        {"qty": "100000000"},
        {"time_in_force": "forever"},
        {"symbol": "MSFT"},
        {"trail": "abc"},
        ["qty", "2"],
    ],
)
def test_bad_replace_bodies_are_400_and_change_nothing(api, resting_order, body):
    response = api.patch(url(resting_order), body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["errors"]
    assert Order.objects.get(pk=resting_order["id"]).status == "new"
    assert Order.objects.count() == 1


def test_a_broker_rejection_of_a_replace_is_422_with_its_code(monkeypatch, api, resting_order):
    def refuse(self, order_id, request):
        raise OrderRejected("insufficient buying power", code=40310000, http_status=403)

    monkeypatch.setattr(SimBroker, "replace_order", refuse)

    # Within the desk's own checks (5,000 shares would be refused before the broker is asked).
    response = api.patch(url(resting_order), {"qty": "50"}, format="json")

    assert response.status_code == 422
    assert response.json() == {
        "detail": "insufficient buying power",
        "code": "broker_rejected",
        "broker_code": "40310000",
    }
    assert Order.objects.get(pk=resting_order["id"]).status == "new"
    assert Order.objects.count() == 1  # the pending replacement is gone with the refusal


@pytest.mark.parametrize(
    ("error", "status", "header"),
    [(RateLimited(retry_after=12), 429, "12"), (BrokerUnavailable("timeout"), 503, "5")],
)
def test_broker_trouble_on_cancel(monkeypatch, api, resting_order, error, status, header):
    def fail(self, order_id):
        raise error

    monkeypatch.setattr(SimBroker, "cancel_order", fail)

    response = api.delete(url(resting_order))

    assert response.status_code == status
    assert response.headers["Retry-After"] == header
    assert Order.objects.get(pk=resting_order["id"]).status == "new"
    assert not OrderEvent.objects.filter(event="cancel_requested").exists()


def test_services_record_the_system_as_actor_for_sync_sources(trader, resting_order):
    order = Order.objects.get(pk=resting_order["id"])

    services.cancel_order(user=trader, order=order, source="sync", actor=None)

    audit = order.events.get(event="cancel_requested")
    assert (audit.source, audit.actor) == ("sync", None)


def test_services_refuse_an_order_of_another_user(other_trader, resting_order):
    order = Order.objects.get(pk=resting_order["id"])
    with pytest.raises(services.NotTheirOrder):
        services.replace_order(
            user=other_trader,
            order=order,
            changes=types.ReplaceRequest(qty=Decimal(2)),
            source="api",
            actor=other_trader,
        )
    assert Order.objects.get(pk=order.pk).status == "new"
