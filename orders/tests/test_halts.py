"""Halts: set and lifted through one service, audited (who, when, why) and announced in their
transaction (told on once it commits); setting one can cancel the open orders it covers; admin
goes through the same door."""

from __future__ import annotations

import dataclasses

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from accounts.selectors import default_broker_account
from conftest import place_resting_buy
from orders import events, halts
from orders.models import OrderEvent, TradingHalt

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(make_user):
    return make_user("operator", is_staff=True, is_superuser=True)


@pytest.fixture
def notices():
    """The notices announced, as a listener tells them on: once their transaction commits."""
    heard = []

    def listen(sender, notices, **kwargs):
        told = [dataclasses.asdict(n) for n in notices]
        transaction.on_commit(lambda: heard.extend(told))

    events.notice.connect(listen)
    yield heard
    events.notice.disconnect(listen)


def test_a_user_halt_with_cancel_all_cancels_that_users_open_orders_and_no_one_elses(
    trader, other_trader, operator, notices, django_capture_on_commit_callbacks
):
    mine = [place_resting_buy(trader), place_resting_buy(trader, symbol="MSFT")]
    theirs = place_resting_buy(other_trader)

    with django_capture_on_commit_callbacks(execute=True):
        result = halts.set_halt(
            scope="user",
            target=trader,
            mode="halted",
            reason="  margin review  ",
            operator=operator,
            cancel_open_orders=True,
        )

    halt = TradingHalt.objects.get()
    assert (halt.scope, halt.user, halt.mode, halt.reason, halt.created_by, halt.active) == (
        "user",
        trader,
        "halted",
        "margin review",
        operator,
        True,
    )
    assert sorted(o.order.pk for o in result.cancels) == sorted(o.pk for o in mine)
    assert all(o.error is None for o in result.cancels)
    for order in mine:
        order.refresh_from_db()
        assert order.status == "canceled"
        assert OrderEvent.objects.filter(order=order, actor=operator).exists()
    theirs.refresh_from_db()
    assert theirs.is_open
    assert [n["kind"] for n in notices] == ["halt_on"]
    assert notices[0]["user_id"] == trader.pk and notices[0]["actor_id"] == operator.pk
    assert notices[0]["details"]["reason"] == "margin review"


def test_without_cancel_all_open_orders_stay_and_a_desk_halt_announces_desk_wide(
    trader, operator, notices, django_capture_on_commit_callbacks
):
    resting = place_resting_buy(trader)
    with django_capture_on_commit_callbacks(execute=True):
        result = halts.set_halt(
            scope="desk", target=None, mode="reducing", reason="FOMC", operator=operator
        )
    assert result.cancels == []
    resting.refresh_from_db()
    assert resting.is_open
    assert notices[0]["kind"] == "halt_on" and notices[0]["user_id"] is None


def test_a_halt_is_announced_inside_its_transaction_and_told_on_only_after_it(
    trader, operator, notices
):
    outside = len(connection.atomic_blocks)
    inside = []

    def listen(sender, notices, **kwargs):
        inside.append((len(connection.atomic_blocks), TradingHalt.objects.exists()))

    events.notice.connect(listen)
    try:
        halts.set_halt(scope="user", target=trader, mode="halted", reason="x", operator=operator)
    finally:
        events.notice.disconnect(listen)
    # In the halt's own transaction, the halt stored: a listener's rows commit with it.
    [(depth, stored)] = inside
    assert depth > outside and stored
    assert notices == []  # the test's transaction never commits


@pytest.mark.parametrize(
    ("scope", "target_of", "mode", "reason"),
    [
        ("desk", "trader", "halted", "why"),  # a desk halt has no target
        ("user", None, "halted", "why"),  # a user halt needs one
        ("user", "trader", "stopped", "why"),  # unknown mode
        ("user", "trader", "halted", "   "),  # no reason
        ("user", "trader", "halted", "x" * 256),  # too long
        ("planet", None, "halted", "why"),  # unknown scope
    ],
)
def test_a_halt_that_does_not_fit_is_refused_and_nothing_is_stored(
    trader, operator, notices, scope, target_of, mode, reason
):
    target = trader if target_of == "trader" else None
    with pytest.raises(ValidationError):
        halts.set_halt(scope=scope, target=target, mode=mode, reason=reason, operator=operator)
    assert not TradingHalt.objects.exists()


def test_lifting_records_who_when_and_why_once(
    trader, operator, notices, django_capture_on_commit_callbacks
):
    halt = halts.set_halt(
        scope="broker_account",
        target=default_broker_account(trader),
        mode="halted",
        reason="keys rotated",
        operator=operator,
    ).halt
    with django_capture_on_commit_callbacks(execute=True):
        lifted = halts.lift_halt(halt, operator=operator, reason=" keys checked ")
    halt.refresh_from_db()
    assert (halt.active, halt.lifted_by, halt.lift_reason) == (False, operator, "keys checked")
    assert halt.lifted_at is not None and halt.lifted_at >= halt.created_at
    assert lifted.pk == halt.pk
    assert [n["kind"] for n in notices] == ["halt_off"]
    with pytest.raises(halts.HaltAlreadyLifted):
        halts.lift_halt(halt, operator=operator, reason="again")
    with pytest.raises(ValidationError):
        halts.lift_halt(
            halts.set_halt(
                scope="desk", target=None, mode="halted", reason="r", operator=operator
            ).halt,
            operator=operator,
            reason=" ",
        )
    halt.refresh_from_db()
    assert halt.lift_reason == "keys checked"


# --- admin: the same door -------------------------------------------------------------
@pytest.fixture
def admin_client(client, operator):
    client.force_login(operator)
    return client


def test_admin_adds_a_halt_through_the_service_with_cancel_all(
    admin_client, trader, operator, django_capture_on_commit_callbacks
):
    resting = place_resting_buy(trader)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/orders/tradinghalt/add/",
            {
                "scope": "user",
                "user": trader.pk,
                "mode": "halted",
                "reason": "desk review",
                "cancel_open_orders": "on",
            },
            follow=True,
        )
    assert response.status_code == 200
    halt = TradingHalt.objects.get()
    assert halt.created_by == operator and halt.user == trader
    resting.refresh_from_db()
    assert resting.status == "canceled"
    assert "Canceled 1 order(s)." in response.content.decode()


def test_admin_refuses_a_halt_whose_target_does_not_fit_and_stores_nothing(admin_client, trader):
    response = admin_client.post(
        "/admin/orders/tradinghalt/add/",
        {"scope": "desk", "user": trader.pk, "mode": "halted", "reason": "r"},
    )
    assert response.status_code == 200  # the form again, with the error
    assert not TradingHalt.objects.exists()


def test_admin_halts_are_read_only_after_creation_and_never_deleted(admin_client, trader, operator):
    halt = halts.set_halt(
        scope="user", target=trader, mode="halted", reason="r", operator=operator
    ).halt
    page = admin_client.get(f"/admin/orders/tradinghalt/{halt.pk}/change/")
    assert page.status_code == 200
    assert 'name="reason"' not in page.content.decode()
    edit = admin_client.post(
        f"/admin/orders/tradinghalt/{halt.pk}/change/",
        {"scope": "desk", "mode": "reducing", "reason": "changed", "active": ""},
    )
    assert edit.status_code == 403
    halt.refresh_from_db()
    assert (halt.scope, halt.mode, halt.reason, halt.active) == ("user", "halted", "r", True)
    assert admin_client.post(f"/admin/orders/tradinghalt/{halt.pk}/delete/").status_code == 403
    assert TradingHalt.objects.filter(pk=halt.pk).exists()


def test_admin_lifts_with_a_reason_asked_for(admin_client, trader, operator):
    halt = halts.set_halt(
        scope="user", target=trader, mode="halted", reason="r", operator=operator
    ).halt
    action = {"action": "lift_halts", "_selected_action": [halt.pk]}
    asked = admin_client.post("/admin/orders/tradinghalt/", action)
    assert asked.status_code == 200 and 'name="reason"' in asked.content.decode()
    blank = admin_client.post("/admin/orders/tradinghalt/", {**action, "apply": "1", "reason": ""})
    assert "is required" in blank.content.decode()
    halt.refresh_from_db()
    assert halt.active
    admin_client.post("/admin/orders/tradinghalt/", {**action, "apply": "1", "reason": "clear"})
    halt.refresh_from_db()
    assert (halt.active, halt.lifted_by, halt.lift_reason) == (False, operator, "clear")
