"""The lot matching itself: methods, flips through zero, fees per share."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from portfolio import ledger

T = datetime(2026, 1, 5, 15, tzinfo=UTC)


def ex(side, qty, price, minutes, order, fee="0", symbol="AAPL", account=1):
    return ledger.Execution(
        account_id=account,
        order_key=order,
        symbol=symbol,
        side=side,
        qty=D(qty),
        price=D(price),
        fee=D(fee),
        at=T + timedelta(minutes=minutes),
        id=minutes,
    )


THREE_LOTS = [
    ex("buy", "1", "100", 1, "a"),
    ex("buy", "1", "110", 2, "b"),
    ex("buy", "1", "105", 3, "c"),
    ex("sell", "1", "120", 4, "s"),
]


@pytest.mark.parametrize(
    ("method", "realized", "left"),
    [
        ("fifo", D("20"), [D("110"), D("105")]),  # closes the 100 lot
        ("lifo", D("15"), [D("100"), D("110")]),  # closes the newest, 105
        ("highest_cost", D("10"), [D("100"), D("105")]),  # closes the dearest, 110
    ],
)
def test_lot_methods_pick_different_lots(method, realized, left):
    built = ledger.build(THREE_LOTS, method)
    assert [trip.realized_pl for trip in built.round_trips] == [realized]
    assert sorted(lot.price for lot in built.lots) == sorted(left)


def test_highest_cost_for_shorts_covers_the_cheapest_sale_first():
    built = ledger.build(
        [
            ex("sell", "1", "50", 1, "a"),
            ex("sell", "1", "40", 2, "b"),
            ex("buy", "1", "45", 3, "c"),
        ],
        "highest_cost",
    )
    assert [(t.direction, t.realized_pl) for t in built.round_trips] == [("short", D("-5"))]
    assert [(lot.qty, lot.price) for lot in built.lots] == [(D("-1"), D("50"))]


def test_a_sell_larger_than_the_long_closes_it_and_opens_a_short_with_its_share_of_the_fee():
    built = ledger.build(
        [ex("buy", "10", "10", 1, "a"), ex("sell", "15", "12", 2, "b", fee="1.5")], "fifo"
    )
    (trip,) = built.round_trips
    assert (trip.direction, trip.qty, trip.fees, trip.realized_pl) == (
        "long",
        D("10"),
        D("1.0"),
        D("19.0"),
    )
    (lot,) = built.lots
    assert (lot.qty, lot.price, lot.fee_per_share) == (D("-5"), D("12"), D("0.1"))


def test_accounts_and_symbols_never_match_each_other():
    built = ledger.build(
        [
            ex("buy", "5", "10", 1, "a", account=1),
            ex("sell", "5", "11", 2, "b", account=2),
            ex("sell", "5", "11", 3, "c", symbol="MSFT", account=1),
        ]
    )
    assert built.round_trips == []
    assert sorted((lot.account_id, lot.symbol, lot.qty) for lot in built.lots) == [
        (1, "AAPL", D("5")),
        (1, "MSFT", D("-5")),
        (2, "AAPL", D("-5")),
    ]


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="lot method"):
        ledger.build([], "average")
