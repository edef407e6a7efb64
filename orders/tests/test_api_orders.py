"""Placing and validating orders through the API, idempotency and broker outages."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.models import Order, OrderEvent
from orders.validation import Verdict
from tradedesk.broker.errors import BrokerUnavailable, RateLimited
from tradedesk.broker.sim.exchange import SimBroker

pytestmark = pytest.mark.django_db


def test_placing_an_order_stores_it_with_its_first_event_and_returns_201(api, place):
    response = place(client_order_id="first-order")

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"order", "warnings", "recommendations"}
    order = Order.objects.get(pk=body["order"]["id"])
    assert order.client_order_id == "first-order"
    assert order.broker_order_id == body["order"]["broker_order_id"] != ""
    assert order.placed_via == "api"
    first = order.events.first()
    assert (first.event, first.source, first.actor_id) == ("submitted", "api", order.user_id)


def test_an_order_without_client_order_id_gets_a_generated_one(place):
    order = place().json()["order"]
    assert len(order["client_order_id"]) == 36


def test_an_invalid_order_is_400_with_codes_and_creates_nothing(place):
    response = place(type="limit")  # a limit order without its limit price

    assert response.status_code == 400
    body = response.json()
    assert body["errors"] == [
        {
            "code": "required",
            "field": "limit_price",
            "message": "A limit order needs a limit price.",
        }
    ]
    assert body["warnings"] == []
    assert not Order.objects.exists()


def test_validate_judges_without_submitting(api):
    body = {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market"}
    good = api.post("/api/v1/orders/validate/", body, format="json")
    bad = api.post("/api/v1/orders/validate/", body | {"symbol": "ZZZZZ"}, format="json")

    assert good.status_code == 200
    assert good.json()["valid"] is True
    assert (good.json()["errors"], good.json()["warnings"]) == ([], [])
    # A plain market buy gets the desk's two risk recommendations.
    assert [r["code"] for r in good.json()["recommendations"]] == ["bracket_order", "stop_loss"]
    assert bad.status_code == 200
    assert bad.json()["valid"] is False
    assert [e["code"] for e in bad.json()["errors"]] == ["unknown_symbol"]
    assert not Order.objects.exists()
    assert api.get("/api/v1/positions/").json() == []


def test_validate_refuses_a_body_that_is_not_an_order(api):
    response = api.post("/api/v1/orders/validate/", ["AAPL"], format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] is None


def test_the_same_body_again_returns_the_first_order(place):
    first = place(client_order_id="abc-1")
    again = place(client_order_id="abc-1")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["order"]["id"] == first.json()["order"]["id"]
    assert Order.objects.count() == 1


def test_a_different_body_with_a_used_client_order_id_is_409(place):
    place(client_order_id="abc-1")
    response = place(client_order_id="abc-1", qty="2")

    assert response.status_code == 409
    assert response.json()["code"] == "client_order_id_conflict"
    assert Order.objects.count() == 1


def test_client_order_ids_are_per_broker_account(place, other_api):
    assert place(client_order_id="shared").status_code == 201
    assert place(client=other_api, client_order_id="shared").status_code == 201
    assert Order.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_identical_posts_make_one_order(trader, place):
    barrier = threading.Barrier(2)
    responses = []

    def post():
        barrier.wait()
        try:
            responses.append(place(client_order_id="concurrent-1"))
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(r.status_code for r in responses) == [200, 201], [r.content for r in responses]
    assert len({r.json()["order"]["id"] for r in responses}) == 1
    assert Order.objects.count() == 1
    assert len(SimBroker(trader.broker_accounts.get().key_id).list_orders()) == 1


def _accept_then_time_out(monkeypatch):
    real_submit = SimBroker.submit_order

    def submit(self, request):
        real_submit(self, request)
        raise BrokerUnavailable("read timed out")

    monkeypatch.setattr(SimBroker, "submit_order", submit)


def test_a_timeout_after_the_broker_accepted_is_resolved_by_client_order_id(
    monkeypatch, trader, place
):
    _accept_then_time_out(monkeypatch)

    response = place(client_order_id="timed-out")

    assert response.status_code == 201, response.content
    order = Order.objects.get()
    assert order.status == "filled"
    assert order.broker_order_id == response.json()["order"]["broker_order_id"] != ""
    assert len(SimBroker(trader.broker_accounts.get().key_id).list_orders()) == 1


def test_a_timeout_before_the_broker_acted_keeps_it_pending_and_never_resubmits(
    monkeypatch, trader, place
):
    submissions = []

    def silent(self, request):
        submissions.append(request.client_order_id)
        raise BrokerUnavailable("connect timed out")

    monkeypatch.setattr(SimBroker, "submit_order", silent)

    response = place(client_order_id="lost")

    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.json()["order"]["status"] == "pending_new"
    assert Order.objects.get().status == "pending_new"

    # The client repeats the request: the desk looks it up, it does not submit it again.
    again = place(client_order_id="lost")
    assert again.status_code == 200
    assert again.json()["order"]["status"] == "pending_new"
    assert submissions == ["lost"]
    assert Order.objects.count() == 1


def test_a_repeat_after_a_lost_answer_finds_the_order_the_broker_accepted(
    monkeypatch, trader, place
):
    real_submit = SimBroker.submit_order
    calls = {"submit": 0, "lookup": 0}
    real_lookup = SimBroker.get_order_by_client_id

    def submit(self, request):
        calls["submit"] += 1
        real_submit(self, request)
        raise BrokerUnavailable("read timed out")

    def lookup_down_once(self, client_order_id):
        calls["lookup"] += 1
        if calls["lookup"] == 1:
            raise BrokerUnavailable("still down")
        return real_lookup(self, client_order_id)

    monkeypatch.setattr(SimBroker, "submit_order", submit)
    monkeypatch.setattr(SimBroker, "get_order_by_client_id", lookup_down_once)

    assert place(client_order_id="x-1").status_code == 503
    again = place(client_order_id="x-1")

    assert again.status_code == 200
    assert again.json()["order"]["status"] == "filled"
    assert calls["submit"] == 1


def test_a_broker_rate_limit_is_429_with_retry_after_and_leaves_nothing(monkeypatch, place):
    def limited(self, request):
        raise RateLimited(retry_after=7)

    monkeypatch.setattr(SimBroker, "submit_order", limited)

    response = place()

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert not Order.objects.exists()
    assert not OrderEvent.objects.exists()


def test_a_broker_rejection_is_400_with_the_brokers_message(place, monkeypatch):
    # The desk's own check would stop this order first; let it through (as a stale cached
    # account would) to see how the broker's refusal reaches the client.
    monkeypatch.setattr("orders.services.validate_order", lambda *args, **kwargs: Verdict())
    response = place(qty="100000", symbol="NVDA")  # far beyond the paper account's buying power

    assert response.status_code == 400, response.content
    assert [e["code"] for e in response.json()["errors"]] == ["broker_rejected"]
    assert "buying power" in response.json()["errors"][0]["message"]
    assert Order.objects.get().status == "rejected"


def test_an_order_placed_in_another_users_broker_account_is_404(place, other_trader):
    account = other_trader.broker_accounts.get()
    response = place(broker_account=account.pk)
    assert response.status_code == 404
    assert not Order.objects.exists()


def test_validation_sees_buying_power_an_order_just_spent(api, place):
    """The account is cached for validation, but placing an order forgets the cached copy."""
    big = {"symbol": "SPY", "side": "buy", "type": "market", "notional": "150000"}
    assert api.post("/api/v1/orders/validate/", big, format="json").json()["valid"] is True
    assert place(**big, qty=None).status_code == 201

    again = api.post("/api/v1/orders/validate/", big, format="json").json()
    assert again["valid"] is False
    assert [e["code"] for e in again["errors"]] == ["insufficient_buying_power"]


def test_placing_an_order_costs_the_same_queries_whatever_the_accounts_history(place):
    def queries_of(side: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = place(side=side)
        assert response.status_code == 201, response.content
        assert response.json()["order"]["status"] == "filled"
        return len(captured)

    # The first buy opens the position; from then on a buy and a sell each cost a fixed count.
    place(side="buy")
    early = (queries_of("sell"), queries_of("buy"))
    for _ in range(24):
        place(side="sell")
        place(side="buy")
    late = (queries_of("sell"), queries_of("buy"))

    assert Order.objects.filter(status="filled").count() == 53
    assert late == early
