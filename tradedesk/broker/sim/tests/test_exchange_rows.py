"""The exchange's statements written once (tradedesk/rows.py) write the rows the ORM writes and
read back the instances it reads, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from tradedesk import rows
from tradedesk.broker.sim.models import SimAccount, SimOrder, SimOrderEvent, SimPosition

from .conftest import OPEN, request

pytestmark = pytest.mark.django_db


def _attributes(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.fields}


def _stored(instance) -> dict:
    """The row as the ORM reads it back, every column."""
    return _attributes(type(instance).objects.get(pk=instance.pk))


def _order(account: SimAccount, **fields) -> SimOrder:
    values = {
        "account": account,
        "client_order_id": str(uuid.uuid4()),
        "symbol": "AAPL",
        "side": "buy",
        "type": "limit",
        "time_in_force": "gtc",
        "status": "partially_filled",
        "qty": Decimal("12.345678901"),
        "filled_qty": Decimal("1.5"),
        # More digits than the column keeps: both ways round it the same.
        "filled_avg_price": Decimal("231.4567890123456789"),
        "limit_price": Decimal("231.50"),
        # More significant digits than a float holds (PostgreSQL keeps them all).
        "hwm": Decimal("98765432.123456789"),
        "extended_hours": True,
        "replaces": uuid.uuid4(),
        "created_at": OPEN,
        "updated_at": OPEN + timedelta(microseconds=123_456),
        "submitted_at": OPEN,
        "active_at": OPEN,
        "last_fill_quote_at": OPEN + timedelta(seconds=1),
    }
    values.update(fields)
    return SimOrder(**values)


def test_an_inserted_order_is_the_row_the_orm_would_have_written(broker):
    account = SimAccount.objects.get(account_id=broker.account_id)
    prebuilt, saved = _order(account), _order(account)
    rows.insert([prebuilt])
    saved.save(force_insert=True)

    assert not prebuilt._state.adding
    written, expected = _stored(prebuilt), _stored(saved)
    for name in ("id", "client_order_id", "replaces"):
        assert written.pop(name) == getattr(prebuilt, name)
        expected.pop(name)
    assert written == expected
    assert written["filled_avg_price"] == Decimal("231.456789012")
    assert written["updated_at"] == OPEN + timedelta(microseconds=123_456)


def test_inserted_trade_updates_get_their_ids_in_order_past_sqlites_parameter_limit(broker):
    account = SimAccount.objects.get(account_id=broker.account_id)
    order = _order(account)
    rows.insert([order])
    # 12 columns a row: more than one statement's worth on SQLite (999 parameters).
    events = [
        SimOrderEvent(account=account, order=order, event=f"e{n}", qty=Decimal(n), at=OPEN)
        for n in range(200)
    ]
    rows.insert(events)

    stored = list(SimOrderEvent.objects.filter(order=order).order_by("id"))
    assert [event.event for event in stored] == [f"e{n}" for n in range(200)]
    assert [event.id for event in events] == [event.id for event in stored]
    assert stored[7].qty == Decimal("7")


def test_an_update_writes_only_the_named_columns(broker):
    account = SimAccount.objects.get(account_id=broker.account_id)
    order = _order(account)
    rows.insert([order])
    order.status, order.filled_qty = "filled", Decimal("12.345678901")
    order.symbol = "MSFT"  # changed in memory only: not named, not written
    with CaptureQueriesContext(connection) as statements:
        rows.save_columns(order, "status", "filled_qty")

    [update] = statements.captured_queries
    assert '"symbol"' not in update["sql"]
    stored = _stored(order)
    assert (stored["status"], stored["filled_qty"], stored["symbol"]) == (
        "filled",
        Decimal("12.345678901"),
        "AAPL",
    )


def test_an_update_of_a_row_that_is_gone_raises():
    account = SimAccount.objects.create(account_id="gone", cash=Decimal("1"))
    SimAccount.objects.filter(pk=account.pk).delete()
    with pytest.raises(DatabaseError):
        rows.save_columns(account, "cash")


def test_the_locked_read_is_the_account_and_its_positions_as_the_orm_reads_them(broker):
    assert broker._locked_account()._positions == {}  # the join's row without a position
    for symbol in ("AAPL", "MSFT"):
        broker.submit_order(request(symbol=symbol, qty="3"))
    broker.submit_order(request(symbol="MSFT", side="sell", qty="3"))  # closed: qty 0, kept

    account = broker._locked_account()
    assert _attributes(account) == _stored(account)
    orm = {position.symbol: position for position in SimPosition.objects.filter(account=account)}
    assert sorted(account._positions) == sorted(orm) == ["AAPL", "MSFT"]
    for symbol, position in account._positions.items():
        assert _attributes(position) == _attributes(orm[symbol])
    assert account._positions["MSFT"].qty == 0
    assert account._positions["AAPL"].qty == 3
