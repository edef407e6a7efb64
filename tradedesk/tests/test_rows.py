"""tradedesk.rows: the statements written once write and read what the ORM's would."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from orders.models import Order, OrderEvent
from tradedesk import rows

pytestmark = pytest.mark.django_db


def _columns(instance) -> dict:
    meta = type(instance)._meta
    return {
        field.attname: getattr(instance, field.attname)
        for field in meta.concrete_fields
        if not field.primary_key
    }


def _order(trader, **fields) -> Order:
    return Order(
        user=trader,
        broker_account=trader.broker_accounts.get(),
        client_order_id=fields.pop("client_order_id", "c1"),
        symbol="AAPL",
        side="buy",
        type="limit",
        time_in_force="day",
        qty=Decimal("1.5"),
        limit_price=Decimal("101.25"),
        status="pending_new",
        submitted_at=timezone.now(),
        **fields,
    )


def test_insert_stores_what_save_stores_defaults_and_auto_now_included(trader):
    by_orm = _order(trader, client_order_id="orm")
    by_orm.save()
    written = _order(trader, client_order_id="rows")
    rows.insert([written])
    assert written.pk is not None and not written._state.adding
    stored = Order.objects.get(pk=written.pk)
    assert stored.updated_at == written.updated_at is not None
    expected = _columns(Order.objects.get(pk=by_orm.pk))
    got = _columns(stored)
    for name in ("client_order_id", "created_at", "updated_at", "submitted_at"):
        expected.pop(name), got.pop(name)
    assert got == expected
    event = OrderEvent(
        order=stored,
        event="submitted",
        status="pending_new",
        source="api",
        detail={"code": "x", "n": 3},
        at=timezone.now(),
    )
    rows.insert([event])
    assert _columns(OrderEvent.objects.get(pk=event.pk)) == _columns(event)


def test_update_changes_only_rows_that_match_every_condition(trader):
    order = _order(trader)
    order.save()
    when = timezone.now()
    stale = {"id": order.pk, "status": "pending_new", "filled_qty": Decimal("1")}
    assert rows.update(Order, {"status": "filled", "filled_at": when}, stale) == 0
    current = {**stale, "filled_qty": Decimal("0")}
    assert rows.update(Order, {"status": "filled", "filled_at": when, "hwm": None}, current) == 1
    stored = Order.objects.get(pk=order.pk)
    assert (stored.status, stored.filled_at) == ("filled", when)


def test_a_shape_loads_converted_values_and_defers_the_rest(trader):
    order = _order(trader)
    order.save()
    shape = rows.shape(Order, ("symbol", "qty", "submitted_at", "extended_hours"))
    (row,) = rows.fetch(
        f"SELECT {shape.columns('o')} FROM {rows.quoted(Order._meta.db_table)} o", []
    )
    loaded = shape.load(row)
    assert (loaded.pk, loaded.symbol, loaded.qty, loaded.submitted_at, loaded.extended_hours) == (
        order.pk,
        "AAPL",
        Decimal("1.500000000"),
        order.submitted_at,
        False,
    )
    assert loaded.get_deferred_fields() >= {"limit_price", "status"}
    assert shape.load((None,) * shape.width) is None
