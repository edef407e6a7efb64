"""Every execution becomes one Fill: from the stream (orders' signal), from the broker's
activity log, from the backfill command; redelivered or recorded twice at once, still one."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection, connections

from accounts.selectors import default_broker_account
from conftest import require_service
from orders import services as order_services
from orders import sync
from orders.models import OrderEvent
from orders.validation import OrderInput
from portfolio import services
from portfolio.models import Fill
from tradedesk.broker.sim import exchange


def market(user, side: str, qty: str, symbol: str = "AAPL"):
    return order_services.place_order(
        user=user,
        broker_account=default_broker_account(user),
        order_input=OrderInput(
            symbol=symbol, side=side, type="market", time_in_force="day", qty=Decimal(qty)
        ),
    ).order


def executions_of(account):
    """The paper exchange's trade updates that are executions, as the stream delivers them."""
    return [update for _, update in exchange.events_after(0) if update.execution_id]


@pytest.mark.django_db
def test_a_streamed_execution_is_one_fill_however_often_delivered(
    trader, django_capture_on_commit_callbacks
):
    order = market(trader, "buy", "3")
    account = order.broker_account
    (update,) = executions_of(account)
    for _ in range(3):  # the first delivery and two redeliveries
        with django_capture_on_commit_callbacks(execute=True):
            sync.apply_order_update(account, update)
    (fill,) = Fill.objects.all()
    assert (fill.order_id, fill.execution_id, fill.source) == (
        order.pk,
        update.execution_id,
        "stream",
    )
    assert (fill.symbol, fill.side, fill.qty) == ("AAPL", "buy", Decimal("3"))
    order.refresh_from_db()
    assert fill.price == order.filled_avg_price
    # The activity log lists the same execution under the same id: still one.
    assert services.sync_fills(broker_account=account) == 0
    assert Fill.objects.count() == 1


@pytest.mark.django_db
def test_the_activity_sync_records_what_the_stream_missed_once(trader):
    buy = market(trader, "buy", "2")
    sell = market(trader, "sell", "2")
    account = buy.broker_account
    assert services.sync_fills(broker_account=account) == 2
    assert services.sync_fills(broker_account=account) == 0
    assert services.sync_fills(broker_account=account, full=True) == 0
    fills = {f.order_id: f for f in Fill.objects.all()}
    assert set(fills) == {buy.pk, sell.pk}
    assert {f.source for f in fills.values()} == {"activity"}


def test_alpaca_activity_ids_name_the_trade_updates_execution_id():
    from tradedesk.broker.types import FillActivity

    activity = FillActivity(
        id="20220419134505024::2f63ea93-423d-4169-b3f6-3fdafc10c418",
        order_id="o",
        symbol="AAPL",
        side="buy",
        type="fill",
        price=Decimal("1"),
        qty=Decimal("1"),
        cum_qty=Decimal("1"),
        leaves_qty=Decimal("0"),
        transaction_time=None,
    )
    assert services.execution_id_of(activity) == "2f63ea93-423d-4169-b3f6-3fdafc10c418"


@pytest.mark.django_db
def test_backfill_command_from_recorded_events_and_the_broker(trader):
    order = market(trader, "buy", "1")
    account = order.broker_account
    (update,) = executions_of(account)
    sync.apply_order_update(account, update)  # no commit callbacks here: no Fill yet
    market(trader, "sell", "1")  # known only to the broker's activity log
    assert Fill.objects.count() == 0
    call_command("backfill_fills", "--no-broker")
    assert list(Fill.objects.values_list("source", "order_id")) == [("backfill", order.pk)]
    call_command("backfill_fills")
    call_command("backfill_fills")
    assert Fill.objects.count() == 2
    assert OrderEvent.objects.filter(order=order).exclude(execution_id="").count() == 1


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_concurrent_records_of_the_same_executions_write_each_once(trader):
    require_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")
    for _ in range(3):
        market(trader, "buy", "1")
    account = default_broker_account(trader)
    barrier = threading.Barrier(8)
    errors = []

    def record(kind: int):
        try:
            barrier.wait(timeout=20)
            if kind % 2:
                services.sync_fills(broker_account=account, full=True)
            else:
                for update in executions_of(account):
                    sync.apply_order_update(account, update)
                services.record_fills_from_events()
        except Exception as failure:  # handed to the assertion below
            errors.append(failure)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=record, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert Fill.objects.count() == 3
    assert len(set(Fill.objects.values_list("execution_id", flat=True))) == 3


@pytest.mark.django_db
def test_fills_of_orders_synced_later_are_linked(trader):
    order = market(trader, "buy", "1")
    account = order.broker_account
    services.sync_fills(broker_account=account)
    Fill.objects.update(order=None)
    assert services.link_fills_to_orders() == 1
    assert Fill.objects.get().order_id == order.pk
    assert services.link_fills_to_orders() == 0
