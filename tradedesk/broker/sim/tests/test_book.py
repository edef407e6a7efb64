"""Rejections, shorts, cash and positions, replace/cancel, the event feed, background matching."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tradedesk.broker.errors import NotCancelable, OrderRejected
from tradedesk.broker.sim import market
from tradedesk.broker.sim.exchange import SimBroker, open_account, process_open_orders
from tradedesk.broker.types import ReplaceRequest

from .conftest import OPEN, request


@pytest.mark.parametrize(
    ("fields", "status", "code", "message"),
    [
        ({"qty": "1000"}, 403, 40310000, "insufficient buying power"),
        ({"symbol": "ZZZZ"}, 422, 42210000, "asset ZZZZ not found"),
        ({"symbol": "SNDL"}, 422, 42210000, "not tradable"),
        ({"symbol": "GME", "qty": "0.5"}, 422, 42210000, "not fractionable"),
        ({"qty": "0.5", "time_in_force": "gtc"}, 422, 42210000, "fractional orders must be day"),
        ({"notional": "500", "type": "limit", "limit_price": "200"}, 422, 42210000, "notional"),
        ({"type": "limit", "limit_price": "230.123"}, 422, 42210000, "sub-penny"),
        ({"type": "stop"}, 422, 42210000, "stop_price is required"),
        ({"side": "sell", "symbol": "PLTR"}, 403, 40310000, "insufficient qty available"),
        ({"side": "sell", "qty": "0.5"}, 403, 40310000, "insufficient qty available"),
    ],
)
def test_refusals_carry_alpacas_status_code_and_message(broker, fields, status, code, message):
    with pytest.raises(OrderRejected) as rejected:
        broker.submit_order(request(**fields))
    assert (rejected.value.http_status, rejected.value.code) == (status, code)
    assert message in rejected.value.message
    assert broker.list_orders() == []


def test_duplicate_client_order_id_is_refused_even_after_cancel(broker):
    first = broker.submit_order(request(type="limit", limit_price="100"))
    broker.cancel_order(first.id)
    duplicate = dataclasses.replace(
        request(type="limit", limit_price="100"), client_order_id=first.client_order_id
    )
    with pytest.raises(OrderRejected) as rejected:
        broker.submit_order(duplicate)
    assert rejected.value.http_status == 422
    assert len(broker.list_orders()) == 1


def test_notional_market_order_buys_a_fraction(broker):
    ask = market.quote("AAPL", OPEN).ask_price
    order = broker.submit_order(request(notional="1000"))
    assert order.status == "filled"
    assert order.filled_qty == (Decimal("1000") / ask).quantize(
        Decimal("0.000000001"), "ROUND_DOWN"
    )
    assert order.filled_qty != order.filled_qty.to_integral_value()


def test_selling_more_than_a_long_opens_a_short_on_a_shortable_asset(broker):
    order = broker.submit_order(request(side="sell", qty="3"))
    assert order.status == "filled"
    [position] = broker.list_positions()
    assert (position.qty, position.side) == (-3, "short")


def test_sequence_long_add_reduce_flip_cover_keeps_cash_positions_and_average_entry(broker, clock):
    cash = Decimal("100000")
    fills = []
    for side, qty in [("buy", 10), ("buy", 10), ("sell", 5), ("sell", 25), ("buy", 10)]:
        order = broker.submit_order(request(side=side, qty=qty))
        assert order.status == "filled"
        fills.append(order.filled_avg_price)
        cash += (-1 if side == "buy" else 1) * qty * order.filled_avg_price
        clock.advance(minutes=1)
    assert fills[0] != fills[1]  # the market moved between the fills
    account = broker.get_account()
    assert account.cash == cash.quantize(Decimal("0.01"))
    assert broker.list_positions() == []
    orders = broker.list_orders()
    assert [o.filled_avg_price for o in orders] == fills


def test_average_entry_after_add_reduce_and_flip(broker, clock):
    first = broker.submit_order(request(qty="10")).filled_avg_price
    clock.advance(minutes=1)
    second = broker.submit_order(request(qty="10")).filled_avg_price
    average = (10 * first + 10 * second) / 20
    assert broker.list_positions()[0].avg_entry_price == average
    clock.advance(minutes=1)
    broker.submit_order(request(side="sell", qty="5"))
    assert broker.list_positions()[0].avg_entry_price == average
    clock.advance(minutes=1)
    flip = broker.submit_order(request(side="sell", qty="25")).filled_avg_price
    [short] = broker.list_positions()
    assert (short.qty, short.avg_entry_price) == (-10, flip)


def test_buying_power_is_twice_equity_less_positions_and_open_buys(broker):
    assert broker.get_account().buying_power == Decimal("200000.00")
    broker.submit_order(request(type="limit", limit_price="100", qty="10"))
    assert broker.get_account().buying_power == Decimal("199000.00")


def test_account_and_positions_in_one_look_match_the_separate_reads(broker):
    broker.submit_order(request(qty="3"))
    broker.submit_order(request("MSFT", side="sell", qty="2"))
    broker.submit_order(request(type="limit", limit_price="100", qty="10"))  # rests: commits cash

    with CaptureQueriesContext(connection) as together:
        account, positions = broker.get_account_and_positions()
    with CaptureQueriesContext(connection) as apart:
        separate = (broker.get_account(), broker.list_positions())

    assert (account, positions) == separate
    assert [(held.symbol, held.side) for held in positions] == [("AAPL", "long"), ("MSFT", "short")]
    assert account.buying_power < account.equity * 2  # the open buy is counted
    # One look at the book, not two (the validator's and the dashboard's read).
    assert len(together) < len(apart)


def test_replace_creates_a_new_order_and_marks_the_old_one_replaced(broker):
    old = broker.submit_order(request(type="limit", limit_price="100", time_in_force="gtc"))
    new = broker.replace_order(old.id, ReplaceRequest(limit_price=Decimal("101"), qty=Decimal(2)))
    old = broker.get_order(old.id)
    assert (old.status, old.replaced_by) == ("replaced", new.id)
    assert (new.status, new.replaces, new.limit_price, new.qty) == ("new", old.id, 101, 2)
    events = [(update.order.id, update.event) for _, update in broker.events_after(0)]
    assert events[-2:] == [(old.id, "replaced"), (new.id, "new")]


def test_cancel_and_replace_of_a_closed_order_are_refused_with_422(broker):
    filled = broker.submit_order(request())
    with pytest.raises(NotCancelable) as cancel:
        broker.cancel_order(filled.id)
    with pytest.raises(NotCancelable) as replace:
        broker.replace_order(filled.id, ReplaceRequest(qty=Decimal(2)))
    assert cancel.value.http_status == replace.value.http_status == 422
    assert broker.get_order(filled.id).status == "filled"


def test_events_after_pages_the_feed_with_each_events_order_state(broker, clock):
    order = broker.submit_order(request("INTC", qty="1500"))
    while broker.get_order(order.id).status != "filled":
        clock.advance(seconds=1)
    feed = broker.events_after(0)
    ids = [event_id for event_id, _ in feed]
    assert ids == sorted(ids)
    first_fill = feed[1][1]
    assert (first_fill.event, first_fill.order.status) == ("partial_fill", "partially_filled")
    assert first_fill.order.filled_qty == first_fill.qty == market.quote("INTC", OPEN).ask_size
    assert feed[-1][1].order.status == "filled"
    assert sum(update.qty for _, update in feed[1:]) == 1500
    assert broker.events_after(ids[-1]) == []
    assert [i for i, _ in broker.events_after(ids[0], limit=2)] == ids[1:3]


def test_process_open_orders_fills_resting_orders_of_every_account(db, clock):
    low = market.span("AAPL", OPEN + timedelta(seconds=1), OPEN + timedelta(minutes=10))[2]
    brokers = [SimBroker(open_account(), now=clock) for _ in range(2)]
    orders = [
        b.submit_order(request(type="limit", limit_price=low + Decimal("0.01"))) for b in brokers
    ]
    idle = SimBroker(open_account(), now=clock)
    idle.submit_order(request())
    assert process_open_orders(now=OPEN + timedelta(minutes=10)) == 2
    for b, order in zip(brokers, orders, strict=True):
        assert b.events_after(0)[-1][1].event == "fill"
        assert b.get_order(order.id).status == "filled"
