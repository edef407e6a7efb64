"""The record rules: their Python and SQL forms agree (single-order paths use the first, the
sync's set-based upsert the second)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import connection

from orders import record
from tradedesk.broker.types import ORDER_STATUSES, TERMINAL_STATUSES

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)


def test_the_sql_event_names_agree_with_the_python_ones_for_every_status_change():
    # The set-based upsert names events in SQL; single-order paths in Python. None: a new order.
    changes = [(p, s) for p in (None, "", *ORDER_STATUSES) for s in ORDER_STATUSES]
    pairs = " UNION ALL ".join(["SELECT %s AS n, %s AS previous, %s AS status"] * len(changes))
    expression = record.event_name_sql("previous", "status")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {expression} FROM ({pairs}) AS changes ORDER BY n",
            [value for n, change in enumerate(changes) for value in (n, *change)],
        )
        in_sql = [name for (name,) in cursor.fetchall()]

    assert in_sql == [record.event_name(p or "", s) for p, s in changes]
    assert {"fill", "partial_fill", "accepted", "canceled"} <= set(in_sql)


# Every stored state against every incoming one: no time yet, older, equal and newer; less,
# as much and more filled; the same status, another open one, a terminal one.
STORED_TIMES = (None, T0)
INCOMING_TIMES = (T0 - timedelta(microseconds=1), T0, T0 + timedelta(microseconds=1))
FILLED = (Decimal("0"), Decimal("2"), Decimal("5"))
STATUSES = ("new", "partially_filled", "filled", "canceled")


def _cases():
    for stored_at, incoming_at in itertools.product(STORED_TIMES, INCOMING_TIMES):
        for stored_filled, incoming_filled in itertools.product(FILLED[:2], FILLED):
            for stored_status, incoming_status in itertools.product(STATUSES, STATUSES):
                yield (
                    (stored_at, stored_filled, stored_status),
                    (
                        incoming_at,
                        incoming_filled,
                        incoming_status,
                    ),
                )


def _moves_forward_in_sql(cases) -> list[bool]:
    stamp = "timestamptz" if connection.vendor == "postgresql" else "text"
    adapt = connection.ops.adapt_datetimefield_value
    row = (
        f"SELECT %s AS n, CAST(%s AS {stamp}) AS broker_updated_at,"
        " CAST(%s AS NUMERIC) AS filled_qty, CAST(%s AS TEXT) AS status"
    )
    rows = " UNION ALL ".join([row] * len(cases))
    params = {"stored": [], "incoming": []}
    for n, (stored, incoming) in enumerate(cases):
        for side, (at, filled, status) in (("stored", stored), ("incoming", incoming)):
            params[side] += [n, adapt(at), str(filled), status]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT CASE WHEN {record.moves_forward_sql('s', 'i')} THEN 1 ELSE 0 END"
            f" FROM ({rows}) AS s JOIN ({rows}) AS i ON s.n = i.n ORDER BY s.n",
            [*params["stored"], *params["incoming"]],
        )
        return [bool(moved) for (moved,) in cursor.fetchall()]


def test_the_sql_monotonic_rule_agrees_with_the_python_one_equal_times_included():
    cases = list(_cases())
    in_python = [
        record.moves_forward(
            SimpleNamespace(
                broker_updated_at=at, filled_qty=filled, status=status, broker_order_id="b-1"
            ),
            SimpleNamespace(updated_at=new_at, filled_qty=new_filled, status=new_status),
        )
        for (at, filled, status), (new_at, new_filled, new_status) in cases
    ]

    # SQLite takes at most 500 terms in one compound SELECT.
    in_sql = [
        moved
        for at in range(0, len(cases), 200)
        for moved in _moves_forward_in_sql(cases[at : at + 200])
    ]
    assert in_sql == in_python
    assert any(in_python) and not all(in_python)


@pytest.mark.parametrize(
    ("stored", "incoming", "moves"),
    [
        # A tie moves forward only on progress: more filled, or a terminal status reached.
        ((T0, "2", "partially_filled"), (T0, "5", "filled"), True),
        ((T0, "0", "new"), (T0, "0", "canceled"), True),
        ((T0, "0", "new"), (T0, "0", "pending_cancel"), False),
        ((T0, "0", "accepted"), (T0, "0", "new"), False),
        ((T0, "2", "partially_filled"), (T0, "2", "partially_filled"), False),
        # Never backwards, whatever the times say.
        ((T0, "0", "canceled"), (T0 + timedelta(seconds=1), "0", "new"), False),
        (
            (T0, "5", "partially_filled"),
            (T0 + timedelta(seconds=1), "2", "partially_filled"),
            False,
        ),
        ((T0, "0", "new"), (T0 - timedelta(seconds=1), "0", "accepted"), False),
        # Nothing stored from the broker yet: any snapshot.
        ((None, "0", "pending_new"), (T0, "0", "new"), True),
    ],
)
def test_equal_times_move_forward_only_on_progress(stored, incoming, moves):
    (at, filled, status), (new_at, new_filled, new_status) = stored, incoming
    order = SimpleNamespace(
        broker_updated_at=at, filled_qty=Decimal(filled), status=status, broker_order_id="b-1"
    )
    snapshot = SimpleNamespace(updated_at=new_at, filled_qty=Decimal(new_filled), status=new_status)
    assert record.moves_forward(order, snapshot) is moves
    cases = [((at, Decimal(filled), status), (new_at, Decimal(new_filled), new_status))]
    assert _moves_forward_in_sql(cases) == [moves]


def test_a_terminal_status_the_desk_concluded_yields_to_the_broker():
    lost = SimpleNamespace(
        broker_updated_at=None, filled_qty=Decimal(0), status="rejected", broker_order_id=""
    )
    assert "rejected" in TERMINAL_STATUSES
    assert record.moves_forward(lost, SimpleNamespace(updated_at=T0, filled_qty=0, status="new"))
