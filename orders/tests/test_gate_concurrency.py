"""Desk limits hold when 16 commands arrive at once: the gate judges and records each one
under the account's lock, counting the others' pending orders as exposure.

Each test runs on the database the run is configured with: SQLite by default (its IMMEDIATE
transactions serialize the gate) and PostgreSQL (row locks) as a services test.
"""

from __future__ import annotations

import threading
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.utils import timezone

from accounts.selectors import default_broker_account
from conftest import require_service
from orders import services
from orders.models import Order, TradingHalt
from orders.validation import OrderInput
from tradedesk.broker import types
from tradedesk.broker.sim import market

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 16
WAIT = 60  # seconds: generous; only reached if the code under test deadlocks
D = Decimal

DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.services),
]


@pytest.fixture(params=DATABASES)
def database(request):
    if request.param == "postgresql":
        require_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")
    elif connection.vendor != "sqlite":
        pytest.skip("this run is on PostgreSQL")
    return request.param


def race(attempt) -> list[tuple[str, object]]:
    """Run attempt(i) in THREADS threads released at once: ("placed", order) or
    ("refused", code) each."""
    barrier = threading.Barrier(THREADS)
    outcomes: list = [None] * THREADS

    def run(index: int) -> None:
        try:
            barrier.wait(WAIT)
            outcomes[index] = ("placed", attempt(index))
        except services.OrderInvalid as invalid:
            outcomes[index] = ("refused", invalid.verdict.errors[0].code)
        except Exception as failure:  # handed to the test's assertions
            outcomes[index] = ("failed", repr(failure))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 2)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


def tally(outcomes) -> Counter:
    return Counter(kind if kind == "placed" else f"{kind}:{detail}" for kind, detail in outcomes)


def placer(user, **fields):
    account = default_broker_account(user)
    values = {"symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day"} | fields

    def attempt(index: int) -> Order:
        order_input = OrderInput(**(values | {"client_order_id": f"race-{index}"}))
        return services.place_order(
            user=user, broker_account=account, order_input=order_input
        ).order

    return attempt


def place(user, **fields) -> Order:
    """One order before the race (a generated client_order_id)."""
    values = {"symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day"} | fields
    return services.place_order(
        user=user, broker_account=default_broker_account(user), order_input=OrderInput(**values)
    ).order


def test_max_daily_trades(database, trader, settings):
    settings.MAX_DAILY_TRADES = 4

    outcomes = race(placer(trader, qty=D("1")))

    assert tally(outcomes) == {"placed": 4, "refused:max_daily_trades": 12}
    assert Order.objects.filter(user=trader, parent__isnull=True).count() == 4


def test_max_position_size_with_resting_orders(database, trader, settings):
    # Ten shares at $100 each time: $1,000 of position per order, room for five.
    settings.MAX_POSITION_SIZE = D("5500")

    outcomes = race(
        placer(trader, type="limit", limit_price=D("100"), qty=D("10"), time_in_force="gtc")
    )

    assert tally(outcomes) == {"placed": 5, "refused:max_position_size": 11}
    assert all(order.status == "new" for kind, order in outcomes if kind == "placed")


def test_max_position_size_with_orders_that_fill_at_once(database, trader, settings):
    # Market orders fill as they are placed: the position grows at the broker between the
    # checks, and the cached position must not hide it.
    price = market.quote("AAPL", timezone.now()).ask_price
    settings.MAX_POSITION_SIZE = (price * D("10") * D("5.5")).quantize(D("1"))

    outcomes = race(placer(trader, qty=D("10")))

    assert tally(outcomes) == {"placed": 5, "refused:max_position_size": 11}
    assert all(order.status == "filled" for kind, order in outcomes if kind == "placed")


def test_reducing_only(database, trader):
    place(trader, qty=D("10"))
    TradingHalt.objects.create(scope="user", user=trader, mode="reducing", reason="risk review")

    outcomes = race(
        placer(
            trader,
            side="sell",
            type="limit",
            limit_price=D("9000"),
            qty=D("1"),
            time_in_force="gtc",
        )
    )

    assert tally(outcomes) == {"placed": 10, "refused:reducing_only": 6}


def test_reducing_only_with_sells_that_fill_at_once(database, trader):
    place(trader, qty=D("10"))
    TradingHalt.objects.create(scope="user", user=trader, mode="reducing", reason="risk review")

    outcomes = race(placer(trader, side="sell", qty=D("1")))

    assert tally(outcomes) == {"placed": 10, "refused:reducing_only": 6}


def test_wash_trade(database, trader):
    place(trader, qty=D("100"))  # shares for the sells
    # Resting both ways: buys at $100 (below the market), stop sells at $100 (a stop below
    # the market waits). Any buy and sell of these could trade against each other.
    buy = placer(trader, type="limit", limit_price=D("100"), qty=D("1"), time_in_force="gtc")
    sell = placer(
        trader, side="sell", type="stop", stop_price=D("100"), qty=D("1"), time_in_force="gtc"
    )

    outcomes = race(lambda index: (buy if index % 2 else sell)(index))

    assert tally(outcomes) == {"placed": 8, "refused:wash_trade": 8}
    sides = {order.side for kind, order in outcomes if kind == "placed"}
    assert len(sides) == 1  # whichever side came first; the other never got in


def test_buying_power(database, trader, settings):
    settings.MAX_POSITION_SIZE = D("1000000000000")
    # $40,000 each of the $200,000 buying power: five fit, the broker's cached account
    # notwithstanding.
    outcomes = race(
        placer(trader, type="limit", limit_price=D("100"), qty=D("400"), time_in_force="gtc")
    )

    assert tally(outcomes) == {"placed": 5, "refused:insufficient_buying_power": 11}
    assert not Order.objects.filter(status="rejected").exists()  # the desk refused, not the broker


def test_concurrent_replaces_count_each_other(database, trader, settings):
    settings.MAX_POSITION_SIZE = D("5500")
    orders = [
        place(trader, type="limit", limit_price=D("100"), qty=D("1"), time_in_force="gtc")
        for _ in range(THREADS)
    ]

    def grow(index: int) -> Order:
        return services.replace_order(
            user=trader,
            order=orders[index],
            changes=types.ReplaceRequest(qty=D("4")),
            source="api",
            actor=trader,
        ).order

    outcomes = race(grow)

    # 16 shares held back at $100 = $1,600; each replace adds 3 shares ($300): room for 13.
    assert tally(outcomes) == {"placed": 13, "refused:max_position_size": 3}


@pytest.mark.parametrize("daily_limit", [200, 1])
def test_identical_requests_place_one_order(database, trader, settings, daily_limit):
    # Even when the first one uses up a limit, the others are its repeats, not refused.
    settings.MAX_DAILY_TRADES = daily_limit
    account = default_broker_account(trader)
    order_input = OrderInput(
        symbol="AAPL",
        side="buy",
        type="market",
        time_in_force="day",
        qty=D("1"),
        client_order_id="once",
    )

    outcomes = race(
        lambda index: (
            services.place_order(user=trader, broker_account=account, order_input=order_input).order
        )
    )

    assert tally(outcomes) == {"placed": THREADS}
    assert {order.pk for kind, order in outcomes} == {Order.objects.get(user=trader).pk}
