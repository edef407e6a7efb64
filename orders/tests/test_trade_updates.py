"""Every trade update event applied to the desk's record and audited (orders.sync's handler)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError

from orders import events
from orders.models import Order, OrderEvent
from orders.sync import live, paging, upsert
from tradedesk.broker.sim.exchange import SimBroker
from tradedesk.broker.types import (
    EXECUTION_EVENTS,
    REFUSAL_EVENTS,
    TRADE_UPDATE_EVENTS,
    BrokerOrder,
    OrderRequest,
    OrderUpdate,
)

from .fake_broker import FakeBroker, broker_order
from .validation_support import desk_order

pytestmark = pytest.mark.django_db

# What each event leaves the order in (Alpaca sends the order as it stands after the event).
EVENT_STATUS = {
    "new": "new",
    "fill": "filled",
    "partial_fill": "partially_filled",
    "canceled": "canceled",
    "expired": "expired",
    "done_for_day": "done_for_day",
    "replaced": "replaced",
    "rejected": "rejected",
    "pending_new": "pending_new",
    "stopped": "stopped",
    "pending_cancel": "pending_cancel",
    "pending_replace": "pending_replace",
    "calculated": "calculated",
    "suspended": "suspended",
}


def test_the_tables_cover_every_alpaca_event():
    assert set(EVENT_STATUS) | REFUSAL_EVENTS == set(TRADE_UPDATE_EVENTS)
    assert len(TRADE_UPDATE_EVENTS) == 16


@pytest.fixture
def account(trader):
    return trader.broker_accounts.get()


@pytest.fixture
def stored(account) -> BrokerOrder:
    """An order the desk already has (accepted at the broker)."""
    order = broker_order(1, status="accepted")
    upsert.upsert_broker_orders(account, [order], source="sync")
    return order


def later(order: BrokerOrder, seconds: int = 1, **fields) -> BrokerOrder:
    return dataclasses.replace(
        order, updated_at=order.updated_at + timedelta(seconds=seconds), **fields
    )


def update(event: str, order: BrokerOrder, **fields) -> OrderUpdate:
    return OrderUpdate(event=event, order=order, timestamp=order.updated_at, **fields)


def row(order: BrokerOrder) -> Order:
    return Order.objects.get(broker_order_id=order.id)


def status_fields(event: str) -> dict:
    fields: dict = {"status": EVENT_STATUS[event]}
    if event == "fill":
        fields |= {"filled_qty": Decimal("10"), "filled_avg_price": Decimal("190.4")}
    if event == "partial_fill":
        fields |= {"filled_qty": Decimal("4"), "filled_avg_price": Decimal("190.4")}
    if event == "replaced":
        fields |= {"replaced_by": "00000000-0000-4000-8000-000000000099"}
    return fields


@pytest.mark.parametrize("event", sorted(EVENT_STATUS))
def test_each_event_moves_the_order_and_is_audited_under_its_name(account, stored, event):
    snapshot = later(stored, **status_fields(event))
    execution = {"price": Decimal("190.4"), "qty": snapshot.filled_qty, "execution_id": "x-1"}
    incoming = update(event, snapshot, **(execution if event in EXECUTION_EVENTS else {}))

    counts = live.apply_order_update(account, incoming)

    assert counts.updated == 1
    order = row(stored)
    assert (order.status, order.filled_qty) == (snapshot.status, snapshot.filled_qty)
    last = order.events.last()
    assert (last.event, last.status, last.source, last.at) == (
        event,
        snapshot.status,
        "stream",
        incoming.timestamp,
    )
    assert last.execution_id == ("x-1" if event in EXECUTION_EVENTS else "")
    assert order.events.count() == 2  # the sync's first sight, then this event


@pytest.mark.parametrize("event", sorted(REFUSAL_EVENTS))
def test_a_refused_cancel_or_replace_leaves_the_order_and_says_why(
    account, stored, event, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []

    class Layer:
        async def group_send(self, group, message):
            sent.append(message["message"]["event"])

    monkeypatch.setattr(events, "get_channel_layer", Layer)
    # Alpaca sends the order as it is: here it filled before the cancel could happen.
    filled = later(stored, status="filled", filled_qty=Decimal("10"))
    refusal = update(event, filled, reason="order is already filled")

    with django_capture_on_commit_callbacks(execute=True):
        counts = live.apply_order_update(account, refusal)

    assert counts == upsert.SyncCounts(unchanged=1)
    order = row(stored)
    assert (order.status, order.filled_qty, order.broker_updated_at) == (
        "accepted",
        0,
        stored.updated_at,
    )
    last = order.events.last()
    assert (last.event, last.status, last.filled_qty, last.source) == (
        event,
        "accepted",
        0,
        "stream",
    )
    assert last.detail == {"broker_status": "filled", "reason": "order is already filled"}
    assert last.at == refusal.timestamp
    events.wait_for_sends()  # handed to the channel layer without waiting
    assert sent == [event]


def test_a_refusal_without_a_reason_records_the_brokers_status(account, stored):
    live.apply_order_update(account, update("order_cancel_rejected", later(stored)))
    assert row(stored).events.last().detail == {"broker_status": "accepted"}


def test_a_refusal_about_an_order_the_desk_lacks_records_nothing(account):
    unknown = broker_order(5, status="new")
    live.apply_order_update(account, update("order_replace_rejected", unknown))
    assert not Order.objects.filter(broker_order_id=unknown.id).exists()
    assert not OrderEvent.objects.filter(event="order_replace_rejected").exists()


def executions(stored: BrokerOrder) -> tuple[OrderUpdate, OrderUpdate]:
    """4 at 190.1, then 6 at 190.4: the order's average becomes 190.28."""
    partial = later(
        stored,
        status="partially_filled",
        filled_qty=Decimal("4"),
        filled_avg_price=Decimal("190.1"),
    )
    full = later(
        stored,
        seconds=2,
        status="filled",
        filled_qty=Decimal("10"),
        filled_avg_price=Decimal("190.28"),
    )
    return (
        update(
            "partial_fill", partial, price=Decimal("190.1"), qty=Decimal("4"), execution_id="e-1"
        ),
        update("fill", full, price=Decimal("190.4"), qty=Decimal("6"), execution_id="e-2"),
    )


def test_each_fill_keeps_its_own_price_qty_id_and_time(account, stored):
    first, second = executions(stored)
    for incoming in (first, second):
        live.apply_order_update(account, incoming)

    order = row(stored)
    assert (order.status, order.filled_avg_price) == ("filled", Decimal("190.28"))
    recorded = list(
        order.events.filter(source="stream").values_list(
            "event", "price", "qty", "execution_id", "at", "filled_qty"
        )
    )
    assert recorded == [
        ("partial_fill", Decimal("190.1"), Decimal("4"), "e-1", first.timestamp, Decimal("4")),
        ("fill", Decimal("190.4"), Decimal("6"), "e-2", second.timestamp, Decimal("10")),
    ]


def test_a_redelivered_execution_is_recorded_once(account, stored):
    first, second = executions(stored)
    for incoming in (first, first, second, first, second):
        live.apply_order_update(account, incoming)

    order = row(stored)
    assert order.status == "filled"
    assert list(order.events.exclude(execution_id="").values_list("execution_id", flat=True)) == [
        "e-1",
        "e-2",
    ]


def test_an_execution_the_sync_already_brought_is_still_recorded(account, stored):
    first, second = executions(stored)
    # The periodic sync saw the filled order before the stream's updates arrived.
    paging.sync_orders(account, broker=FakeBroker([(1000, second.order)]))
    for incoming in (first, second, second):
        counts = live.apply_order_update(account, incoming)
        assert counts.unchanged == 1

    order = row(stored)
    assert (order.status, order.filled_avg_price) == ("filled", Decimal("190.28"))
    assert list(order.events.values_list("event", "source", "execution_id", "price")) == [
        ("accepted", "sync", "", None),
        # In time order: the first execution happened before the sync saw the order filled.
        ("partial_fill", "stream", "e-1", Decimal("190.1")),
        ("fill", "sync", "", Decimal("190.28")),
        ("fill", "stream", "e-2", Decimal("190.4")),
    ]
    late = order.events.get(execution_id="e-1")
    # Recorded late: the order as it stands now, and said so.
    assert (late.status, late.filled_qty, late.detail) == ("filled", 10, {"order_unchanged": True})


def test_the_database_refuses_a_second_event_for_one_execution(account):
    order = desk_order(account)
    OrderEvent.objects.create(
        order=order, event="new", status="new", source="stream", at=order.created_at
    )
    OrderEvent.objects.create(
        order=order, event="new", status="new", source="stream", at=order.created_at
    )
    fill = {"event": "fill", "status": "filled", "source": "stream", "at": order.created_at}
    OrderEvent.objects.create(order=order, execution_id="e-9", **fill)
    with pytest.raises(IntegrityError):
        OrderEvent.objects.create(order=order, execution_id="e-9", **fill)


def test_replaced_links_the_chain_both_ways(account, stored):
    new_id = "00000000-0000-4000-8000-000000000002"
    pending = later(stored, status="pending_replace")
    replaced = later(
        stored, seconds=2, status="replaced", replaced_by=new_id, replaced_at=pending.updated_at
    )
    replacement = dataclasses.replace(
        broker_order(2, status="new", qty=Decimal("5")),
        id=new_id,
        replaces=stored.id,
        updated_at=replaced.updated_at,
    )
    for incoming in (
        update("pending_replace", pending),
        update("replaced", replaced),
        update("new", replacement),
    ):
        live.apply_order_update(account, incoming)

    old, new = row(stored), row(replacement)
    assert (old.status, old.replaced_by, new.replaces) == (
        "replaced",
        new.broker_order_id,
        old.broker_order_id,
    )
    assert list(old.events.values_list("event", flat=True)) == [
        "accepted",
        "pending_replace",
        "replaced",
    ]
    assert list(new.events.values_list("event", "status", "qty")) == [("new", "new", None)]
    assert new.qty == 5


def test_an_update_never_moves_an_order_backwards(account, stored):
    _, filled = executions(stored)
    live.apply_order_update(account, filled)
    stale = update("pending_cancel", later(stored, status="pending_cancel"))
    assert live.apply_order_update(account, stale).unchanged == 1
    assert row(stored).status == "filled"
    assert not row(stored).events.filter(event="pending_cancel").exists()


def test_paper_exchange_fills_carry_their_executions(account):
    broker = SimBroker(account.key_id)
    placed = broker.submit_order(
        OrderRequest(
            symbol="AAPL",
            side="buy",
            type="market",
            time_in_force="day",
            qty=Decimal("2"),
            client_order_id="paper-execution-1",
        )
    )
    feed = [u for _, u in broker.events_after(0)]
    for incoming in feed:
        live.apply_order_update(account, incoming)

    [fill] = [u for u in feed if u.is_execution]
    recorded = Order.objects.get(broker_order_id=placed.id).events.get(event="fill")
    assert fill.execution_id
    assert (recorded.execution_id, recorded.price, recorded.qty, recorded.at) == (
        fill.execution_id,
        fill.price,
        fill.qty,
        fill.timestamp,
    )
    assert recorded.price == placed.filled_avg_price
