"""Every kind of notice reaches the right people from its real path, once."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.utils import timezone

from accounts.selectors import default_broker_account
from notifications.models import Notification
from orders import approvals, halts, services, tasks
from orders.models import Order
from orders.sync import live, paging, upsert
from orders.tests.fake_broker import FakeBroker, broker_order
from orders.validation import OrderInput
from tradedesk.broker.types import OrderUpdate

from .conftest import market_buy

pytestmark = pytest.mark.django_db
D = Decimal


def kinds(user) -> list[str]:
    return list(
        Notification.objects.filter(user=user).order_by("pk").values_list("kind", flat=True)
    )


def test_a_paper_fill_is_announced_once_to_its_trader(trader, other_trader, committed):
    with committed():
        order = market_buy(trader)
    assert order.status == "filled"

    note = Notification.objects.get(user=trader)
    assert (note.kind, note.order, note.on_page) == ("fill", order, True)
    price = format(order.filled_avg_price.normalize(), "f")
    assert note.title == f"Filled: buy 2 AAPL @ {price}"
    assert note.order_state["status"] == "filled" and note.order_state["filled_qty"] == "2"
    assert kinds(other_trader) == []


@pytest.fixture
def account(trader):
    return trader.broker_accounts.get()


@pytest.fixture
def stored(account, committed):
    """An order the desk has, accepted at the broker (the upsert that brought it is no news)."""
    order = broker_order(1, status="accepted")
    with committed():
        upsert.upsert_broker_orders(account, [order], source="sync")
    return order


def _later(order, seconds, **fields):
    return dataclasses.replace(
        order, updated_at=order.updated_at + timedelta(seconds=seconds), **fields
    )


def test_trade_updates_announce_each_fill_once_however_often_delivered(
    trader, account, stored, committed
):
    partial = _later(
        stored, 1, status="partially_filled", filled_qty=D("4"), filled_avg_price=D("190.1")
    )
    full = _later(stored, 2, status="filled", filled_qty=D("10"), filled_avg_price=D("190.28"))
    first = OrderUpdate(
        "partial_fill",
        partial,
        partial.updated_at,
        price=D("190.1"),
        qty=D("4"),
        execution_id="e-1",
    )
    second = OrderUpdate(
        "fill", full, full.updated_at, price=D("190.4"), qty=D("6"), execution_id="e-2"
    )

    for update in (first, first, second, first, second):
        with committed():
            live.apply_order_update(account, update)
    # The periodic sync sees the same filled order again: nothing new.
    with committed():
        paging.sync_orders(account, broker=FakeBroker([(1000, full)]))

    assert kinds(trader) == ["partial_fill", "fill"]
    titles = list(Notification.objects.order_by("pk").values_list("title", flat=True))
    assert titles == ["Partly filled: buy 4 of 10 AAPL @ 190.1", "Filled: buy 10 AAPL @ 190.28"]


def test_the_sync_announces_a_rejection_once_and_no_order_it_first_sees(
    trader, account, stored, committed
):
    rejected = _later(stored, 5, status="rejected")
    filled_elsewhere = broker_order(2, status="filled", filled_qty=D("10"), filled_avg_price=D("1"))
    broker = FakeBroker([(1000, rejected), (2000, filled_elsewhere)])
    for _ in range(2):
        with committed():
            paging.sync_orders(account, broker=broker)

    assert Order.objects.get(broker_order_id=filled_elsewhere.id).status == "filled"
    # A history import would announce every past fill: an order first seen is no news.
    assert kinds(trader) == ["rejected"]
    assert Notification.objects.get().title == "Rejected: buy 10 AAPL"


def test_the_reconciler_announces_a_lost_order(trader, account, committed):
    request = OrderInput(
        symbol="AAPL", side="buy", type="limit", time_in_force="gtc", qty=D("1"),
        limit_price=D("1"), client_order_id="never-sent",
    )  # fmt: skip
    pending = services.record_submission(
        user=trader, broker_account=account, request=request, source="api"
    )
    Order.objects.filter(pk=pending.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.ORDER_PENDING_TIMEOUT + 1)
    )
    with committed():
        assert tasks.reconcile_pending_orders() == 1

    note = Notification.objects.get(user=trader)
    assert (note.kind, note.title, note.order_id) == ("lost", "Lost: buy 1 AAPL", pending.pk)
    assert "never reached the broker" in note.body


@pytest.fixture
def operator(make_user):
    user = make_user("olga", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="approve_order"))
    return user


def test_an_approval_asks_the_operators_tells_the_submitter_and_the_decision(
    trader, other_trader, operator, make_user, settings, committed
):
    settings.APPROVAL_NOTIONAL = D("1000")
    make_user("staff-without-permission", is_staff=True)
    with committed():
        order = market_buy(trader, qty="100")
    assert order.status == "pending_approval"

    waiting = Notification.objects.get(user=trader)
    assert (waiting.kind, waiting.title) == (
        "approval_needed",
        "Waiting for approval: buy 100 AAPL",
    )
    asked = Notification.objects.get(user=operator)
    assert asked.title == "Approval needed: alice's buy 100 AAPL"
    # Only operators who may decide it hear of it.
    assert Notification.objects.filter(kind="approval_needed").count() == 2

    with committed():
        approvals.reject_order(order, operator, "too big", source="api")
    decided = Notification.objects.get(user=trader, kind="approval_decided")
    assert (decided.title, decided.body) == ("Approval rejected: buy 100 AAPL", "too big")
    assert kinds(other_trader) == []


def test_halts_reach_whom_they_cover(trader, other_trader, operator, committed):
    with committed():
        desk = halts.set_halt(
            scope="desk", target=None, mode="halted", reason="FOMC", operator=operator
        ).halt
    for user in (trader, other_trader, operator):
        assert kinds(user) == ["halt_on"]
    assert (
        Notification.objects.filter(user=trader).get().title == "Halt set: the whole desk is halted"
    )

    with committed():
        halts.lift_halt(desk, operator=operator, reason="over")
        halts.set_halt(
            scope="broker_account", target=default_broker_account(trader), mode="reducing",
            reason="margin", operator=operator,
        )  # fmt: skip
    assert kinds(trader) == ["halt_on", "halt_off", "halt_on"]
    assert kinds(other_trader) == ["halt_on", "halt_off"]
    latest = Notification.objects.filter(user=trader).first()
    assert (latest.title, latest.body) == ("Halt set: your account is reduce-only", "margin")


class RolledBack(Exception):
    pass


def test_a_fill_and_its_notification_commit_or_roll_back_together(trader, committed, monkeypatch):
    from django.core import mail
    from django.db import transaction

    from notifications import services as notification_services
    from orders import events

    sent = []

    class Layer:
        async def group_send(self, group, message):
            sent.append(message)

    monkeypatch.setattr(notification_services, "get_channel_layer", Layer)
    trader.email = "alice@example.com"
    trader.save()
    with committed(), pytest.raises(RolledBack), transaction.atomic():
        order = market_buy(trader)
        # Stored in the fill's transaction: no crash between them can lose it.
        assert Notification.objects.get().order == order
        raise RolledBack
    events.wait_for_sends()
    assert not Notification.objects.exists()
    # What goes out after the commit (the live frame, the e-mail) went with the rollback.
    assert (sent, mail.outbox) == ([], [])


def test_a_big_sync_batch_is_delivered_by_a_task_not_the_sync(
    trader, account, committed, monkeypatch
):
    from notifications import services as notification_services
    from notifications import tasks as notification_tasks

    known = [broker_order(n, status="new") for n in range(1, 31)]
    with committed():
        upsert.upsert_broker_orders(account, known, source="sync")
    filled = [
        _later(o, 5, status="filled", filled_qty=o.qty, filled_avg_price=D("190.5")) for o in known
    ]
    queued = []
    deliver_later = notification_tasks.deliver_notices_later.delay
    monkeypatch.setattr(
        notification_tasks.deliver_notices_later,
        "delay",
        lambda notices: queued.append(len(notices)) or deliver_later(notices),
    )
    inline = []
    monkeypatch.setattr(
        notification_services, "deliver", _spy(notification_services.deliver, inline)
    )

    with committed():
        upsert.upsert_broker_orders(account, filled, source="sync")

    assert queued == [30] and inline == [30]  # one task for the batch, run by the worker
    notes = Notification.objects.filter(user=trader, kind="fill")
    assert notes.count() == 30
    first = notes.get(order__broker_order_id=known[0].id)
    assert (first.title, first.order_state["status"]) == ("Filled: buy 10 AAPL @ 190.5", "filled")


def _spy(function, calls):
    def spied(notices):
        calls.append(len(notices))
        return function(notices)

    return spied
