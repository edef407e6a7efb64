"""The desk's order record at the database level: check constraints, uniqueness, indexes and
reversible migrations."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.selectors import default_broker_account
from orders.models import Order, OrderEvent, PositionSnapshot

pytestmark = pytest.mark.django_db


def order_values(trader, **changes) -> dict:
    return {
        "user": trader,
        "broker_account": default_broker_account(trader),
        "broker_order_id": "b-1",
        "client_order_id": "c-1",
        "symbol": "AAPL",
        "side": "buy",
        "type": "limit",
        "time_in_force": "day",
        "qty": Decimal("1"),
        "limit_price": Decimal("100.25"),
        "status": "new",
    } | changes


@pytest.mark.parametrize(
    "bad",
    [
        {"placed_via": "fax"},
        {"qty": None, "notional": None},
    ],
)
def test_the_database_rejects_invalid_enumerated_values(trader, bad):
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.create(**order_values(trader, **bad))
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "pending_review"),
        ("status", "a_status_alpaca_adds_next_year"),
        ("order_class", "mleg"),
        ("order_class", "new_class"),
        ("side", ""),  # an mleg order's sides are its legs'
        ("type", "iceberg"),
        ("time_in_force", "forever"),
    ],
)
def test_broker_values_the_desk_has_not_seen_are_stored_as_they_came(trader, field, value):
    order = Order.objects.create(**order_values(trader, **{field: value}))
    order.refresh_from_db()
    assert getattr(order, field) == value
    event = OrderEvent.objects.create(
        order=order, event="new", status=order.status, source="sync", at=order.created_at
    )
    event.refresh_from_db()
    assert event.status == order.status
    # An unknown status is open until the broker says otherwise.
    assert order.is_open


def test_every_valid_enumerated_value_is_accepted(trader):
    order = Order.objects.create(**order_values(trader))
    for field, value in [("status", "partially_filled"), ("type", "trailing_stop")]:
        setattr(order, field, value)
        order.save()
    order.refresh_from_db()
    assert (order.status, order.type) == ("partially_filled", "trailing_stop")


def test_broker_order_ids_are_unique_per_broker_account(trader, other_trader):
    Order.objects.create(**order_values(trader))
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.create(**order_values(trader, client_order_id="c-2"))
    # Another broker account may hold the same broker id.
    Order.objects.create(**order_values(other_trader))
    # Not yet confirmed by the broker (empty id): any number of them.
    Order.objects.create(**order_values(trader, broker_order_id="", client_order_id="c-3"))
    Order.objects.create(**order_values(trader, broker_order_id="", client_order_id="c-4"))
    assert Order.objects.count() == 4


def test_client_order_ids_are_unique_per_broker_account(trader):
    Order.objects.create(**order_values(trader))
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.create(**order_values(trader, broker_order_id="b-2"))


def test_event_and_snapshot_enumerations_are_checked_too(trader):
    order = Order.objects.create(**order_values(trader))
    now = timezone.now()
    with pytest.raises(IntegrityError), transaction.atomic():
        OrderEvent.objects.create(order=order, event="x", status="new", source="carrier", at=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        PositionSnapshot.objects.create(
            user=trader,
            broker_account=order.broker_account,
            symbol="AAPL",
            qty=Decimal("1"),
            side="sideways",
            avg_entry_price=Decimal("1"),
            current_price=Decimal("1"),
            market_value=Decimal("1"),
            cost_basis=Decimal("1"),
            unrealized_pl=Decimal("0"),
            unrealized_plpc=Decimal("0"),
            snapshot_at=now,
        )


def test_money_and_quantities_round_trip_as_exact_decimals(trader):
    order = Order.objects.create(
        **order_values(trader, qty=Decimal("0.123456789"), limit_price=Decimal("1234.5678"))
    )
    order.refresh_from_db()
    assert order.qty == Decimal("0.123456789")
    assert order.limit_price == Decimal("1234.5678")
    assert isinstance(order.filled_qty, Decimal)


@pytest.mark.parametrize(
    ("model", "name", "columns"),
    [
        (Order, "order_user_created", ["user_id", "created_at"]),
        (Order, "order_symbol_created", ["symbol", "created_at"]),
        (Order, "order_status_created", ["status", "created_at"]),
        (Order, "order_user_symbol", ["user_id", "symbol"]),
        (PositionSnapshot, "snapshot_user_time", ["user_id", "snapshot_at"]),
        (PositionSnapshot, "snapshot_symbol_time", ["symbol", "snapshot_at"]),
        (OrderEvent, "order_event_order_at", ["order_id", "at"]),
    ],
)
def test_the_indexes_for_the_common_queries_exist(model, name, columns):
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    assert name in constraints
    assert constraints[name]["index"] is True
    assert constraints[name]["columns"] == columns


def test_the_broker_order_id_unique_constraint_exists_in_the_database():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Order._meta.db_table)
    unique = [c["columns"] for c in constraints.values() if c["unique"] and not c["primary_key"]]
    assert ["broker_account_id", "broker_order_id"] in unique


def test_the_models_and_migrations_agree():
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("app", ["orders", "sim"])
def test_migrations_are_reversible(app):
    call_command("migrate", app, "zero", verbosity=0)
    tables = connection.introspection.table_names()
    assert not [t for t in tables if t.startswith(f"{app}_")]
    call_command("migrate", verbosity=0)
    tables = connection.introspection.table_names()
    assert [t for t in tables if t.startswith(f"{app}_")]
