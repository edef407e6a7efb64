"""The paper exchange keeps its books in the database: a restart (a new SimBroker, another
process) sees the same cash, positions and orders; resting orders follow market hours."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tradedesk.broker.errors import AuthenticationFailed
from tradedesk.broker.sim import market
from tradedesk.broker.sim.exchange import SimBroker, open_account
from tradedesk.broker.types import OrderRequest

pytestmark = pytest.mark.django_db

TUESDAY = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
SATURDAY = datetime(2026, 11, 28, 16, 0, tzinfo=UTC)
MONDAY_OPEN = datetime(2026, 11, 30, 14, 31, tzinfo=UTC)


def broker_at(account_id: str, at: datetime) -> SimBroker:
    return SimBroker(account_id, now=lambda: at)


def buy(symbol: str, qty: str, client_order_id: str, **extra) -> OrderRequest:
    return OrderRequest(
        symbol=symbol,
        side="buy",
        type=extra.pop("type", "market"),
        time_in_force=extra.pop("time_in_force", "day"),
        client_order_id=client_order_id,
        qty=Decimal(qty),
        **extra,
    )


def test_a_new_broker_instance_sees_the_same_cash_positions_and_orders():
    account_id = open_account()
    order = broker_at(account_id, TUESDAY).submit_order(buy("AAPL", "3", "restart-1"))
    assert order.status == "filled"
    ask = market.quote("AAPL", TUESDAY).ask_price

    restarted = broker_at(account_id, TUESDAY)  # nothing shared with the first instance
    account = restarted.get_account()
    assert account.cash == (Decimal("100000") - 3 * ask).quantize(Decimal("0.01"))
    [position] = restarted.list_positions()
    assert (position.symbol, position.qty, position.avg_entry_price) == ("AAPL", 3, ask)
    assert restarted.get_order(order.id).filled_qty == 3
    assert restarted.get_order_by_client_id("restart-1").id == order.id
    assert [o.id for o in restarted.list_orders()] == [order.id]


def test_accounts_are_separate_books():
    mine, theirs = open_account(), open_account()
    order = broker_at(mine, TUESDAY).submit_order(buy("MSFT", "1", "own-1"))
    other = broker_at(theirs, TUESDAY)
    assert other.list_positions() == []
    assert other.get_account().cash == Decimal("100000.00")
    assert other.list_orders() == []
    assert order.id not in {o.id for o in other.list_orders()}


def test_an_unknown_account_is_refused():
    with pytest.raises(AuthenticationFailed):
        broker_at("no-such-account", TUESDAY).get_account()


def test_with_the_calendar_on_a_weekend_market_order_queues_and_fills_at_the_open(settings):
    settings.TRADEDESK_SIM_ALWAYS_OPEN = False
    account_id = open_account()
    queued = broker_at(account_id, SATURDAY).submit_order(
        buy("SPY", "2", "weekend-1", time_in_force="gtc")
    )
    assert (queued.status, queued.filled_qty) == ("accepted", 0)
    assert broker_at(account_id, SATURDAY).list_positions() == []
    # A minute after Monday's open, in a fresh instance: the resting order caught up with
    # the market and filled at the opening price (9:30 New York), not at a later quote.
    monday = broker_at(account_id, MONDAY_OPEN)
    filled = monday.get_order(queued.id)
    assert (filled.status, filled.filled_qty) == ("filled", 2)
    opening = MONDAY_OPEN.replace(minute=30)
    assert filled.filled_avg_price == market.auction_price("SPY", opening)


def test_with_the_demo_setting_a_weekend_market_order_fills_at_once(settings):
    settings.TRADEDESK_SIM_ALWAYS_OPEN = True
    order = broker_at(open_account(), SATURDAY).submit_order(buy("SPY", "1", "weekend-2"))
    assert order.status == "filled"
    assert order.filled_avg_price == market.quote("SPY", SATURDAY).ask_price


def test_a_limit_order_below_the_market_rests_until_cancelled():
    account_id = open_account()
    broker = broker_at(account_id, TUESDAY)
    ask = market.quote("AAPL", TUESDAY).ask_price
    order = broker.submit_order(
        buy(
            "AAPL",
            "1",
            "limit-1",
            type="limit",
            limit_price=(ask * Decimal("0.5")).quantize(Decimal("0.01")),
        )
    )
    assert order.status == "new"
    broker_at(account_id, TUESDAY).cancel_order(order.id)
    assert broker_at(account_id, TUESDAY).get_order(order.id).status == "canceled"
