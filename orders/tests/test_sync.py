"""The order sync: batch upsert, monotonic updates, history, paging, interruption, live updates."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from orders import events
from orders.models import Order, OrderEvent
from orders.sync import live, paging, upsert
from tradedesk.broker.types import BrokerOrder, OrderUpdate

from .fake_broker import FakeBroker, at_ns, broker_order
from .validation_support import desk_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(trader):
    return trader.broker_accounts.get()


def rows(account):
    return list(
        Order.objects.filter(broker_account=account)
        .order_by("broker_order_id")
        .values_list("broker_order_id", "status", "filled_qty", "broker_updated_at")
    )


def test_first_sync_creates_every_order_attributed_to_the_accounts_user(account, trader):
    broker = FakeBroker((n * 1000, broker_order(n)) for n in range(1, 4))

    counts = paging.sync_orders(account, broker=broker)

    assert counts == upsert.SyncCounts(created=3, updated=0, unchanged=0)
    orders = Order.objects.filter(broker_account=account).order_by("broker_order_id")
    assert [o.client_order_id for o in orders] == ["client-1", "client-2", "client-3"]
    assert {(o.user_id, o.placed_via, o.status, o.qty) for o in orders} == {
        (trader.pk, "sync", "new", Decimal("10"))
    }
    assert orders[0].limit_price == Decimal("190.5")
    events = OrderEvent.objects.filter(order__broker_account=account)
    assert sorted((e.event, e.source, e.status) for e in events) == [("new", "sync", "new")] * 3


def test_sync_twice_is_idempotent(account):
    broker = FakeBroker((n * 1000, broker_order(n)) for n in range(1, 6))
    paging.sync_orders(account, broker=broker)
    before, events_before = rows(account), OrderEvent.objects.count()

    counts = paging.sync_orders(account, broker=broker)
    again = paging.sync_orders(account, broker=broker, since=at_ns(0) - timedelta(days=1))

    assert counts == again == upsert.SyncCounts(created=0, updated=0, unchanged=5)
    assert rows(account) == before
    assert OrderEvent.objects.count() == events_before


def test_a_change_updates_the_row_and_records_one_event(account):
    broker = FakeBroker([(1000, broker_order(1))])
    paging.sync_orders(account, broker=broker)
    order_id = broker_order(1).id
    later = at_ns(1000) + timedelta(seconds=5)
    broker.change(
        order_id,
        status="partially_filled",
        filled_qty=Decimal("4"),
        filled_avg_price=Decimal("190.25"),
        updated_at=later,
    )

    counts = paging.sync_orders(account, broker=broker)

    assert counts == upsert.SyncCounts(created=0, updated=1, unchanged=0)
    order = Order.objects.get(broker_order_id=order_id)
    assert (order.status, order.filled_qty, order.broker_updated_at) == (
        "partially_filled",
        Decimal("4"),
        later,
    )
    last = order.events.last()
    assert (last.event, last.filled_qty, last.price, last.source) == (
        "partial_fill",
        Decimal("4"),
        Decimal("190.25"),
        "sync",
    )
    assert order.events.count() == 2


def test_older_snapshots_never_overwrite_newer_ones(account):
    first = broker_order(1)
    t0 = first.updated_at
    partial = dataclasses.replace(
        first, status="partially_filled", filled_qty=Decimal("4"), updated_at=t0 + timedelta(1)
    )
    filled = dataclasses.replace(
        first, status="filled", filled_qty=Decimal("10"), updated_at=t0 + timedelta(2)
    )
    # Arrive out of order: the fill first, then the stale partial fill and the stale "new".
    upsert.upsert_broker_orders(account, [filled], source="sync")
    stale = upsert.upsert_broker_orders(account, [partial], source="sync")
    staler = upsert.upsert_broker_orders(account, [first], source="sync")

    assert stale == staler == upsert.SyncCounts(created=0, updated=0, unchanged=1)
    assert rows(account) == [(first.id, "filled", Decimal("10"), t0 + timedelta(2))]
    assert [e.event for e in OrderEvent.objects.all()] == ["fill"]


def test_filled_qty_never_goes_down_and_terminal_stays_terminal(account):
    first = broker_order(1)
    t0 = first.updated_at
    canceled = dataclasses.replace(
        first, status="canceled", filled_qty=Decimal("3"), updated_at=t0 + timedelta(1)
    )
    upsert.upsert_broker_orders(account, [canceled], source="sync")
    # Newer timestamps, but a lower filled qty / a step out of a terminal status.
    lower = dataclasses.replace(canceled, filled_qty=Decimal("2"), updated_at=t0 + timedelta(2))
    reopened = dataclasses.replace(canceled, status="new", updated_at=t0 + timedelta(3))

    assert upsert.upsert_broker_orders(account, [lower], source="sync").unchanged == 1
    assert upsert.upsert_broker_orders(account, [reopened], source="sync").unchanged == 1
    assert rows(account) == [(first.id, "canceled", Decimal("3"), t0 + timedelta(1))]


def test_same_timestamp_counts_only_when_it_fills_more_or_finishes(account):
    first = broker_order(1, status="partially_filled", filled_qty=Decimal("4"))
    upsert.upsert_broker_orders(account, [first], source="sync")
    same_time_fill = dataclasses.replace(first, status="filled", filled_qty=Decimal("10"))

    counts = upsert.upsert_broker_orders(account, [same_time_fill], source="sync")

    assert counts.updated == 1
    assert rows(account)[0][1:3] == ("filled", Decimal("10"))


@pytest.mark.parametrize(
    ("broker_status", "event"),
    [("new", "new"), ("pending_new", "accepted")],  # same status: the broker id alone changed
)
def test_a_pending_desk_order_is_matched_by_client_order_id(account, trader, broker_status, event):
    pending = desk_order(
        account,
        client_order_id="client-1",
        type="limit",
        qty=Decimal("10"),
        limit_price=Decimal("190.5"),
        status="pending_new",
        placed_via="api",
    )
    broker = FakeBroker([(1000, broker_order(1, status=broker_status))])

    counts = paging.sync_orders(account, broker=broker)

    assert counts == upsert.SyncCounts(created=0, updated=1, unchanged=0)
    pending.refresh_from_db()
    assert (pending.broker_order_id, pending.status, pending.placed_via) == (
        broker_order(1).id,
        broker_status,
        "api",
    )
    assert Order.objects.filter(broker_account=account).count() == 1
    assert [e.event for e in pending.events.all()] == [event]


def test_a_broker_order_reusing_a_taken_client_order_id_is_skipped(account, caplog):
    first = broker_order(1)
    upsert.upsert_broker_orders(account, [first], source="sync")
    reused = broker_order(2, client_order_id=first.client_order_id)

    counts = upsert.upsert_broker_orders(account, [reused, broker_order(3)], source="sync")

    assert counts == upsert.SyncCounts(created=1, updated=0, unchanged=1)
    assert sorted(Order.objects.values_list("broker_order_id", flat=True)) == [
        first.id,
        broker_order(3).id,
    ]
    assert OrderEvent.objects.count() == 2
    assert f"reuses client_order_id {first.client_order_id!r}" in caplog.text


def test_legs_are_stored_as_child_orders(account):
    legs = (
        broker_order(2, type="limit", side="sell", status="new"),
        broker_order(3, type="stop", side="sell", status="held", stop_price=Decimal("180")),
    )
    parent = broker_order(1, order_class="bracket", status="filled", legs=legs)
    counts = paging.sync_orders(account, broker=FakeBroker([(1000, parent)]))

    assert counts.created == 3
    stored = Order.objects.get(broker_order_id=parent.id)
    assert sorted(stored.legs.values_list("broker_order_id", "status")) == [
        (legs[0].id, "new"),
        (legs[1].id, "held"),
    ]
    # An open leg keeps the watermark at its parent, so its next change is still seen.
    assert paging.sync_watermark(account) < parent.submitted_at
    broker = FakeBroker([(1000, parent)])
    broker.change(
        parent.id,
        legs=(dataclasses.replace(legs[0], status="filled", updated_at=at_ns(9000)), legs[1]),
    )
    assert paging.sync_orders(account, broker=broker) == upsert.SyncCounts(0, 1, 2)
    assert Order.objects.get(broker_order_id=legs[0].id).status == "filled"


def test_paging_past_one_page_with_shared_nanosecond_timestamps(account):
    # 1,200 orders, four per microsecond (distinct nanoseconds the desk never sees), so page
    # boundaries cut through identical timestamps and `after=<last seen>` returns repeats.
    broker = FakeBroker((n * 250, broker_order(n, submitted_ns=n * 250)) for n in range(1, 1201))
    assert len({o.submitted_at for _, o in broker.orders.values()}) == 301

    counts = paging.sync_orders(account, broker=broker)

    assert counts == upsert.SyncCounts(created=1200, updated=0, unchanged=0)
    assert Order.objects.filter(broker_account=account).count() == 1200
    assert OrderEvent.objects.count() == 1200
    assert broker.pages_served == 3


def test_paging_stops_when_a_page_brings_no_new_ids(account):
    # Every order in one microsecond: the next page is the same orders again, forever.
    broker = FakeBroker((n, broker_order(n, submitted_ns=n)) for n in range(1, 501))

    counts = paging.sync_orders(account, broker=broker)

    assert counts.created == 500
    assert broker.pages_served == 2


def test_open_orders_hold_the_watermark_until_they_close(account):
    broker = FakeBroker(
        [(1000, broker_order(1, status="filled", filled_qty=Decimal("10")))]
        + [(n * 1000, broker_order(n)) for n in (2, 3)]
    )
    paging.sync_orders(account, broker=broker)
    assert paging.sync_watermark(account) == at_ns(2000) - timedelta(microseconds=1)

    for n in (2, 3):
        broker.change(broker_order(n).id, status="canceled", updated_at=at_ns(9000))
    paging.sync_orders(account, broker=broker)

    assert paging.sync_watermark(account) == at_ns(3000) - timedelta(microseconds=1)


class Crash(Exception):
    pass


def test_a_sync_killed_midway_keeps_its_batches_and_the_next_run_finishes(account, settings):
    settings.ORDER_SYNC_BATCH_SIZE = 500  # a transaction per page
    broker = FakeBroker((n * 1000, broker_order(n)) for n in range(1, 1201))

    def crash_on_second_page(page: int) -> None:
        if page == 1:
            raise Crash

    broker.before_page = crash_on_second_page
    with pytest.raises(Crash):
        paging.sync_orders(account, broker=broker)

    # The first batch is committed whole, with its events; nothing of the second.
    assert Order.objects.filter(broker_account=account).count() == 500
    assert OrderEvent.objects.count() == 500
    assert paging.sync_watermark(account) == at_ns(1000) - timedelta(microseconds=1)

    broker.before_page = None
    for n in range(1, 501):  # meanwhile the broker closed the first page's orders
        broker.change(broker_order(n).id, status="canceled", updated_at=at_ns(2_000_000))
    counts = paging.sync_orders(account, broker=broker)

    assert counts == upsert.SyncCounts(created=700, updated=500, unchanged=0)
    assert Order.objects.filter(broker_account=account).count() == 1200
    assert OrderEvent.objects.count() == 1700


def test_a_failed_batch_writes_nothing(account, monkeypatch):
    broker = FakeBroker((n * 1000, broker_order(n)) for n in range(1, 4))
    monkeypatch.setattr(upsert, "_publish", _raise_crash)  # after the upsert and its events

    with pytest.raises(Crash):
        paging.sync_orders(account, broker=broker)

    assert Order.objects.filter(broker_account=account).count() == 0


def _raise_crash(*args, **kwargs):
    raise Crash


def test_a_live_update_reaches_the_database(account):
    order = broker_order(1)
    upsert.upsert_broker_orders(account, [order], source="sync")
    fill = dataclasses.replace(
        order,
        status="filled",
        filled_qty=Decimal("10"),
        filled_avg_price=Decimal("190.4"),
        filled_at=order.updated_at + timedelta(seconds=1),
        updated_at=order.updated_at + timedelta(seconds=1),
    )
    update = OrderUpdate(
        event="fill",
        order=fill,
        timestamp=fill.updated_at,
        price=Decimal("190.4"),
        qty=Decimal("10"),
    )

    counts = live.apply_order_update(account, update)
    repeated = live.apply_order_update(account, update)

    assert (counts.updated, repeated.unchanged) == (1, 1)
    stored = Order.objects.get(broker_order_id=order.id)
    assert (stored.status, stored.filled_qty, stored.filled_avg_price) == (
        "filled",
        Decimal("10"),
        Decimal("190.4"),
    )
    last = stored.events.last()
    assert (last.event, last.source, last.qty) == ("fill", "stream", Decimal("10"))
    assert stored.events.count() == 2


@pytest.mark.django_db(transaction=True)
async def test_the_order_update_handler_applies_updates_from_an_async_stream(trader):
    account = await sync_to_async(trader.broker_accounts.get)()
    order: BrokerOrder = broker_order(7, status="accepted")
    handler = live.order_update_handler(account)

    await handler(OrderUpdate(event="new", order=order, timestamp=order.updated_at))

    stored = await Order.objects.aget(broker_order_id=order.id)
    assert (stored.status, stored.placed_via, stored.user_id) == ("accepted", "sync", trader.pk)
    await sync_to_async(connections.close_all)()  # the worker thread's, before teardown


def test_changed_orders_are_published_to_their_owner_after_commit(
    account, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []

    class Layer:
        async def group_send(self, group, message):
            sent.append((group, message["message"]["status"], message["message"]["event"]))

    monkeypatch.setattr(events, "get_channel_layer", Layer)
    broker = FakeBroker([(1000, broker_order(1, status="filled", filled_qty=Decimal("10")))])

    with django_capture_on_commit_callbacks(execute=True):
        paging.sync_orders(account, broker=broker)
    with django_capture_on_commit_callbacks(execute=True):
        paging.sync_orders(account, broker=broker, since=at_ns(0))

    events.wait_for_sends()  # handed to the channel layer without waiting
    assert sent == [(f"orders.user.{account.user_id}", "filled", "fill")]


def test_a_batch_of_changes_reaches_the_stream_as_one_message_of_frames(
    account, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []

    class Layer:
        async def group_send(self, group, message):
            sent.append((group, message))

    monkeypatch.setattr(events, "get_channel_layer", Layer)
    broker = FakeBroker((n * 1000, broker_order(n)) for n in range(1, 4))
    paging.sync_orders(account, broker=broker)
    broker.change(broker_order(2).id, status="canceled", updated_at=at_ns(9000))

    with django_capture_on_commit_callbacks(execute=True):
        paging.sync_orders(account, broker=broker, since=at_ns(0))
    with django_capture_on_commit_callbacks(execute=True):
        paging.sync_orders(account, broker=FakeBroker((n * 1000, broker_order(n)) for n in (4, 5)))

    events.wait_for_sends()
    group = f"orders.user.{account.user_id}"
    stored = dict(Order.objects.values_list("broker_order_id", "pk"))
    assert [(g, m["type"]) for g, m in sent] == [(group, "order.update"), (group, "order.updates")]
    assert (sent[0][1]["message"]["id"], sent[0][1]["message"]["event"]) == (
        stored[broker_order(2).id],
        "canceled",
    )
    assert [(m["type"], m["broker_order_id"], m["event"]) for m in sent[1][1]["messages"]] == [
        ("order", broker_order(4).id, "new"),
        ("order", broker_order(5).id, "new"),
    ]


def test_pages_are_committed_in_batches_of_the_configured_size(account, settings):
    settings.ORDER_SYNC_BATCH_SIZE = 1000
    broker = FakeBroker((n * 1000, broker_order(n)) for n in range(1, 2001))
    committed = []

    paging.sync_orders(account, broker=broker, on_batch=lambda counts: committed.append(counts))

    # Pages of 500 overlap by one order; each batch holds whole pages, at least 1,000 orders.
    assert [c.created for c in committed] == [1498, 2000]
    assert Order.objects.filter(broker_account=account).count() == 2000
