"""Two syncs of one account never run at once; different accounts sync side by side."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

from conftest import require_service
from orders.models import Order, OrderEvent, OrderSyncLease
from orders.sync import lock, paging, upsert

from .fake_broker import FakeBroker, broker_order

pytestmark = pytest.mark.django_db(transaction=True)
WAIT = 20  # seconds: generous; only reached if the code under test deadlocks


def in_thread(target, *args, **kwargs) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = target(*args, **kwargs)
        except Exception as failure:  # handed to the test's assertions
            outcome["error"] = failure
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def holding_broker(orders: int) -> tuple[FakeBroker, threading.Event, threading.Event]:
    """A broker whose first page waits until the test says go: its sync holds the lock."""
    broker = FakeBroker((n * 1000, broker_order(n)) for n in range(1, orders + 1))
    inside, go = threading.Event(), threading.Event()

    def hold(page: int) -> None:
        if page == 0:
            inside.set()
            assert go.wait(WAIT)

    broker.before_page = hold
    return broker, inside, go


def test_a_second_sync_of_the_same_account_is_refused_while_one_runs(trader):
    account = trader.broker_accounts.get()
    first_broker, inside, go = holding_broker(600)
    first, outcome = in_thread(paging.sync_orders, account, broker=first_broker)
    assert inside.wait(WAIT)

    with pytest.raises(lock.SyncInProgress):
        paging.sync_orders(account, broker=FakeBroker((n * 1000, broker_order(n)) for n in (1, 2)))
    go.set()
    first.join(WAIT)

    assert outcome == {"result": upsert.SyncCounts(created=600, updated=0, unchanged=0)}
    assert Order.objects.filter(broker_account=account).count() == 600
    assert OrderEvent.objects.count() == 600
    # Released: the next sync runs, and finds nothing new.
    again = paging.sync_orders(account, broker=first_broker)
    assert again.created == again.updated == 0


def test_syncs_of_different_accounts_run_side_by_side(trader, other_trader):
    mine, theirs = trader.broker_accounts.get(), other_trader.broker_accounts.get()
    holding, inside, go = holding_broker(3)
    first, outcome = in_thread(paging.sync_orders, mine, broker=holding)
    assert inside.wait(WAIT)
    try:
        # While the first sync holds its account's lock, another account syncs.
        other = paging.sync_orders(theirs, broker=FakeBroker([(1000, broker_order(9))]))
    finally:
        go.set()
        first.join(WAIT)

    assert other.created == 1
    assert outcome["result"].created == 3


def test_a_lease_left_by_a_killed_worker_expires(trader, settings):
    settings.REDIS_URL = ""  # the database lease, used where there is no Redis
    account = trader.broker_accounts.get()
    OrderSyncLease.objects.create(
        broker_account=account, holder="killed-worker", expires_at=timezone.now() + timedelta(1)
    )
    broker = FakeBroker([(1000, broker_order(1))])
    with pytest.raises(lock.SyncInProgress):
        paging.sync_orders(account, broker=broker)

    OrderSyncLease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    assert paging.sync_orders(account, broker=broker).created == 1
    assert OrderSyncLease.objects.get().holder == ""


@pytest.mark.services
def test_the_lock_is_held_in_redis_when_configured(trader):
    require_service("Redis (REDIS_URL)", bool(settings.REDIS_URL))
    account = trader.broker_accounts.get()
    key = f"tradedesk:order-sync:{account.pk}"

    with lock.account_sync_lock(account) as renew:
        assert lock._redis().exists(key)
        renew()
        assert 0 < lock._redis().ttl(key) <= settings.CELERY_TASK_TIME_LIMIT
        with pytest.raises(lock.SyncInProgress), lock.account_sync_lock(account):
            pass

    assert not lock._redis().exists(key)
    assert not OrderSyncLease.objects.exists()


@pytest.mark.services
def test_concurrent_upserts_of_the_same_orders_write_each_change_once(trader):
    """The stream and a sync racing on the same rows (PostgreSQL row locks decide)."""
    require_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")
    account = trader.broker_accounts.get()
    first = [broker_order(n) for n in range(1, 201)]
    filled = [
        dataclasses.replace(
            order,
            status="filled",
            filled_qty=Decimal("10"),
            updated_at=order.updated_at + timedelta(seconds=1),
        )
        for order in first
    ]
    barrier = threading.Barrier(4)

    def write(snapshots):
        barrier.wait(WAIT)
        return upsert.upsert_broker_orders(account, snapshots, source="sync")

    threads = [
        in_thread(write, snapshots)
        for snapshots in (first, filled, list(reversed(filled)), list(reversed(first)))
    ]
    for thread, _ in threads:
        thread.join(WAIT)

    assert [outcome.get("error") for _, outcome in threads] == [None] * 4
    assert set(
        Order.objects.filter(broker_account=account).values_list("status", "filled_qty")
    ) == {("filled", Decimal("10"))}
    assert Order.objects.filter(broker_account=account).count() == 200
    # Each order: one fill, and a "new" only if the unfilled snapshot landed first.
    events = Counter(OrderEvent.objects.values_list("order_id", "event"))
    assert set(events.values()) == {1}
    assert Counter(event for _, event in events)["fill"] == 200
