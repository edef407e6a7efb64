"""Nothing stays unknown: an order recorded as pending whose broker answer never came is
resolved by client_order_id — at once, by the beat's reconciler, and by every sync."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from accounts.models import BrokerAccount
from accounts.services import broker_for
from orders import services, tasks
from orders.models import Order
from orders.sync import paging
from tradedesk.broker.errors import BrokerUnavailable
from tradedesk.broker.sim import market
from tradedesk.broker.tests.alpaca_fakes import KEY_ID, SECRET

from .fake_broker import FakeBroker, broker_order
from .validation_support import order

pytestmark = pytest.mark.django_db


def resting_buy(**changes):
    """A buy limit far below the market: the paper exchange rests it."""
    price = (market.quote("AAPL", timezone.now()).mid / 2).quantize(Decimal("0.01"))
    return order(
        type="limit",
        limit_price=price,
        time_in_force="gtc",
        client_order_id=f"desk-{uuid.uuid4()}",
        **changes,
    )


def recorded(account, request) -> Order:
    """The desk's pending record of an order, as written just before the broker is asked."""
    return services.record_submission(
        user=account.user, broker_account=account, request=request, source="api"
    )


def overdue(pending: Order) -> Order:
    """The pending order as if recorded longer than ORDER_PENDING_TIMEOUT ago."""
    Order.objects.filter(pk=pending.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.ORDER_PENDING_TIMEOUT + 1)
    )
    pending.refresh_from_db()
    return pending


def events(pending: Order) -> list[str]:
    return [event.event for event in pending.events.all()]


def assert_lost(pending: Order) -> None:
    pending.refresh_from_db()
    assert (pending.status, pending.broker_order_id) == ("rejected", "")
    assert pending.failed_at is not None
    assert events(pending) == ["submitted", "lost"]
    lost = pending.events.get(event="lost")
    assert (lost.source, lost.status) == ("system", "rejected")
    assert "never reached the broker" in lost.detail["reason"]
    assert lost.detail["client_order_id"] == pending.client_order_id
    assert lost.detail["pending_seconds"] >= settings.ORDER_PENDING_TIMEOUT


@pytest.fixture
def paper(trader) -> BrokerAccount:
    return trader.broker_accounts.get()


# --- the paper exchange -------------------------------------------------------


def test_paper_an_order_the_broker_accepted_before_the_process_died_is_applied(paper):
    request = resting_buy()
    pending = recorded(paper, request)
    at_broker = broker_for(paper).submit_order(request)  # the answer never reached the desk

    assert tasks.reconcile_pending_orders() == 1

    pending.refresh_from_db()
    assert (pending.broker_order_id, pending.status) == (at_broker.id, at_broker.status)
    assert pending.broker_created_at == at_broker.created_at
    assert events(pending) == ["submitted", at_broker.status]
    assert pending.events.last().source == "sync"


def test_paper_an_order_the_broker_never_received_is_lost_after_the_timeout(paper):
    young = recorded(paper, resting_buy())
    old = overdue(recorded(paper, resting_buy()))

    assert tasks.reconcile_pending_orders() == 1

    assert_lost(old)
    young.refresh_from_db()
    assert (young.status, events(young)) == ("pending_new", ["submitted"])


def test_paper_every_sync_settles_the_accounts_pending_orders_both_ways(paper):
    accepted_request = resting_buy()
    accepted = recorded(paper, accepted_request)
    at_broker = broker_for(paper).submit_order(accepted_request)
    never_received = overdue(recorded(paper, resting_buy()))

    paging.sync_orders(paper)

    accepted.refresh_from_db()
    assert (accepted.broker_order_id, accepted.status) == (at_broker.id, at_broker.status)
    assert_lost(never_received)


def test_a_lost_order_the_broker_turns_out_to_have_is_brought_back_by_the_sync(paper):
    pending = overdue(
        services.record_submission(
            user=paper.user,
            broker_account=paper,
            request=order(client_order_id="client-1", qty=Decimal("10")),
            source="api",
        )
    )
    broker = FakeBroker()
    services.reconcile_pending(pending, broker=broker)
    assert_lost(pending)

    broker.put(broker_order(1), submitted_ns=1000)  # the broker had it after all
    paging.sync_orders(paper, broker=broker)

    pending.refresh_from_db()
    assert (pending.broker_order_id, pending.status) == (broker_order(1).id, "new")
    assert pending.events.order_by("id").last().event == "new"


def test_the_reconciler_goes_on_past_an_account_whose_broker_is_down(
    paper, other_trader, monkeypatch
):
    other = other_trader.broker_accounts.get()
    overdue(recorded(paper, resting_buy()))
    lost = overdue(recorded(other, resting_buy()))
    down = FakeBroker()
    down.get_order_by_client_id = _unavailable
    monkeypatch.setattr(
        paging,
        "broker_for",
        lambda account: down if account.pk == paper.pk else broker_for(account),
    )

    assert tasks.reconcile_pending_orders() == 1

    assert_lost(lost)
    assert Order.objects.filter(broker_account=paper, status="pending_new").count() == 1


def _unavailable(client_order_id):
    raise BrokerUnavailable("down")


def test_the_reconciler_runs_every_minute_from_beat():
    task = PeriodicTask.objects.select_related("interval").get(
        task="orders.tasks.reconcile_pending_orders"
    )
    assert (task.interval.every, task.interval.period, task.enabled) == (60, "seconds", True)


# --- cancel of an unconfirmed order -----------------------------------------------


def test_cancel_of_an_unconfirmed_order_says_when_to_ask_again_then_finds_it_lost(paper, api):
    pending = recorded(paper, resting_buy())

    refused = api.delete(f"/api/v1/orders/{pending.pk}/")

    assert refused.status_code == 422
    assert refused.json()["code"] == "order_unconfirmed"
    wait = int(refused["Retry-After"])
    assert 0 < wait <= settings.ORDER_PENDING_TIMEOUT
    assert f"try again in {wait} s" in refused.json()["detail"]
    pending.refresh_from_db()
    assert (pending.status, events(pending)) == ("pending_new", ["submitted"])

    overdue(pending)
    closed = api.delete(f"/api/v1/orders/{pending.pk}/")

    assert closed.status_code == 422
    assert closed.json()["code"] == "order_closed"
    assert "Retry-After" not in closed
    assert_lost(pending)


def test_cancel_of_an_unconfirmed_order_the_broker_has_cancels_it(paper, api):
    request = resting_buy()
    pending = recorded(paper, request)
    broker_for(paper).submit_order(request)

    response = api.delete(f"/api/v1/orders/{pending.pk}/")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "canceled"
    pending.refresh_from_db()
    assert pending.broker_order_id and pending.status == "canceled"


# --- Alpaca (the loopback fake) ----------------------------------------------------


@pytest.fixture
def alpaca_account(trader, alpaca_settings) -> BrokerAccount:
    return BrokerAccount.objects.create(
        user=trader, provider="alpaca", paper=True, label="Alpaca", key_id=KEY_ID, secret=SECRET
    )


def test_alpaca_an_order_accepted_before_the_process_died_is_applied(alpaca_account, fake_alpaca):
    request = order(qty=Decimal("2"), client_order_id="desk-accepted")
    pending = recorded(alpaca_account, request)
    at_broker = fake_alpaca.add_order(client_order_id="desk-accepted", qty=2, status="accepted")

    assert tasks.reconcile_pending_orders() == 1

    pending.refresh_from_db()
    assert (pending.broker_order_id, pending.status) == (at_broker["id"], "accepted")
    assert fake_alpaca.requests_to("GET", "/v2/orders:by_client_order_id")


def test_alpaca_a_submission_that_timed_out_and_never_arrived_is_lost_after_the_timeout(
    alpaca_account, fake_alpaca
):
    request = order(qty=Decimal("2"), client_order_id="desk-timed-out")
    # Validation's look-ups first (cached for a few seconds), so the hang hits the POST.
    services.check_order(
        user=alpaca_account.user, broker_account=alpaca_account, order_input=request
    )
    fake_alpaca.hang_next()  # the POST: Alpaca never answers (and never got it)

    with pytest.raises(services.SubmissionPending) as pending_error:
        services.place_order(
            user=alpaca_account.user, broker_account=alpaca_account, order_input=request
        )

    pending = pending_error.value.order
    # Looked up at once: Alpaca has no such order yet, and it is too young to call lost.
    assert len(fake_alpaca.requests_to("GET", "/v2/orders:by_client_order_id")) == 1
    pending.refresh_from_db()
    assert (pending.status, pending.broker_order_id) == ("pending_new", "")

    overdue(pending)
    assert tasks.reconcile_pending_orders() == 1
    assert_lost(pending)


def test_alpaca_every_sync_settles_the_accounts_pending_orders(alpaca_account, fake_alpaca):
    accepted = recorded(alpaca_account, order(qty=Decimal("1"), client_order_id="desk-a"))
    fake_alpaca.add_order(client_order_id="desk-a")
    never_received = overdue(
        recorded(alpaca_account, order(qty=Decimal("1"), client_order_id="desk-b"))
    )

    paging.sync_orders(alpaca_account)

    accepted.refresh_from_db()
    assert accepted.broker_order_id and accepted.status == "new"
    assert_lost(never_received)


def test_the_reconciler_leaves_confirmed_orders_alone(paper):
    placed = services.place_order(user=paper.user, broker_account=paper, order_input=resting_buy())
    before = events(placed.order)

    assert tasks.reconcile_pending_orders() == 0
    assert events(placed.order) == before


def test_the_cancel_page_says_when_to_try_an_unconfirmed_order_again(paper, client, trader):
    pending = recorded(paper, resting_buy())
    client.force_login(trader)

    response = client.post(f"/orders/{pending.pk}/cancel/", follow=True)

    assert response.status_code == 200
    shown = [str(message) for message in response.context["messages"]]
    assert len(shown) == 1 and "has not confirmed this order yet; try again in" in shown[0]
    pending.refresh_from_db()
    assert pending.status == "pending_new"
