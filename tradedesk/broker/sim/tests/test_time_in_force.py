"""Time in force on the paper exchange: ioc, fok, opg, cls, day and gtc, over real NYSE hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tradedesk.broker.errors import OrderRejected
from tradedesk.broker.sim import market

from .conftest import OPEN, request

PRE_MARKET = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)  # 8:00 New York
OPENING_BELL = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
CLOSING_BELL = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)


def test_ioc_fills_what_the_quote_offers_and_cancels_the_rest(broker):
    quote = market.quote("INTC", OPEN)
    order = broker.submit_order(request("INTC", qty="5000", time_in_force="ioc"))
    assert (order.status, order.filled_qty) == ("canceled", quote.ask_size)
    assert [u.event for _, u in broker.events_after(0)] == ["new", "partial_fill", "canceled"]


def test_ioc_limit_that_is_not_marketable_is_canceled_unfilled(broker):
    bid = market.quote("AAPL", OPEN).bid_price
    order = broker.submit_order(request(type="limit", limit_price=bid - 5, time_in_force="ioc"))
    assert (order.status, order.filled_qty) == ("canceled", 0)


def test_fok_larger_than_the_quote_is_canceled_without_any_fill(broker):
    order = broker.submit_order(request("INTC", qty="5000", time_in_force="fok"))
    assert (order.status, order.filled_qty) == ("canceled", 0)
    assert broker.list_positions() == []


def test_fok_within_the_quote_fills_entirely(broker):
    size = market.quote("INTC", OPEN).ask_size
    order = broker.submit_order(request("INTC", qty=size, time_in_force="fok"))
    assert (order.status, order.filled_qty) == ("filled", size)


def test_opg_queues_before_the_open_and_fills_at_the_opening_price(broker, clock):
    clock.at = PRE_MARKET
    order = broker.submit_order(request(qty="2", time_in_force="opg"))
    assert order.status == "accepted"
    clock.at = OPENING_BELL - timedelta(seconds=1)
    assert broker.get_order(order.id).status == "accepted"
    clock.at = OPENING_BELL + timedelta(minutes=3)
    filled = broker.get_order(order.id)
    assert filled.status == "filled"
    assert (filled.filled_at, filled.filled_avg_price) == (
        OPENING_BELL,
        market.auction_price("AAPL", OPENING_BELL),
    )


def test_opg_during_the_session_is_rejected_and_after_7pm_goes_to_the_next_open(broker, clock):
    with pytest.raises(OrderRejected) as rejected:
        broker.submit_order(request(time_in_force="opg"))
    assert rejected.value.http_status == 422
    clock.at = datetime(2026, 11, 25, 0, 30, tzinfo=UTC)  # 19:30 New York on the 24th
    order = broker.submit_order(request(time_in_force="opg"))
    clock.at = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)
    assert broker.get_order(order.id).filled_at == datetime(2026, 11, 25, 14, 30, tzinfo=UTC)


def test_opg_limit_not_marketable_at_the_open_is_canceled(broker, clock):
    clock.at = PRE_MARKET
    price = market.auction_price("AAPL", OPENING_BELL)
    order = broker.submit_order(request(type="limit", limit_price=price - 1, time_in_force="opg"))
    clock.at = OPENING_BELL + timedelta(minutes=1)
    assert broker.get_order(order.id).status == "canceled"


def test_cls_waits_for_the_closing_auction(broker, clock):
    order = broker.submit_order(request(time_in_force="cls"))
    assert order.status == "new"
    clock.at = CLOSING_BELL - timedelta(minutes=30)
    assert broker.get_order(order.id).filled_qty == 0
    clock.at = CLOSING_BELL + timedelta(minutes=5)
    filled = broker.get_order(order.id)
    assert (filled.status, filled.filled_at, filled.filled_avg_price) == (
        "filled",
        CLOSING_BELL,
        market.auction_price("AAPL", CLOSING_BELL),
    )


def test_cls_after_the_cutoff_is_rejected(broker, clock):
    clock.at = CLOSING_BELL - timedelta(minutes=5)
    with pytest.raises(OrderRejected):
        broker.submit_order(request(time_in_force="cls"))


def test_cls_on_the_early_close_after_thanksgiving_executes_at_1pm(broker, clock):
    clock.at = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    order = broker.submit_order(request(time_in_force="cls"))
    clock.at = datetime(2026, 11, 27, 19, 0, tzinfo=UTC)
    assert broker.get_order(order.id).filled_at == datetime(2026, 11, 27, 18, 0, tzinfo=UTC)


def test_day_order_expires_at_the_close(broker, clock):
    bid = market.quote("AAPL", OPEN).bid_price
    order = broker.submit_order(request(type="limit", limit_price=bid - 40))
    clock.at = CLOSING_BELL - timedelta(seconds=1)
    assert broker.get_order(order.id).status == "new"
    clock.at = CLOSING_BELL + timedelta(hours=1)
    expired = broker.get_order(order.id)
    assert (expired.status, expired.expired_at) == ("expired", CLOSING_BELL)


def test_day_order_placed_the_evening_before_thanksgiving_works_through_the_early_close(
    broker, clock
):
    clock.at = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
    order = broker.submit_order(request(type="limit", limit_price="100"))
    assert order.status == "accepted"
    clock.at = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)  # Thanksgiving: closed, still queued
    assert broker.get_order(order.id).status == "accepted"
    clock.at = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
    assert broker.get_order(order.id).status == "new"
    clock.at = datetime(2026, 11, 27, 18, 30, tzinfo=UTC)
    expired = broker.get_order(order.id)
    assert (expired.status, expired.expired_at) == (
        "expired",
        datetime(2026, 11, 27, 18, 0, tzinfo=UTC),
    )


def test_market_order_placed_before_the_open_fills_in_the_first_minute(broker, clock):
    clock.at = PRE_MARKET
    order = broker.submit_order(request())
    assert order.status == "accepted"
    clock.at = OPENING_BELL + timedelta(minutes=2)
    filled = broker.get_order(order.id)
    assert filled.status == "filled"
    assert filled.filled_at == OPENING_BELL + timedelta(minutes=1)
    assert filled.filled_avg_price == market.span("AAPL", OPENING_BELL, filled.filled_at)[0]


def test_gtc_rests_across_sessions_and_expires_after_90_days(broker, clock):
    order = broker.submit_order(request(type="limit", limit_price="100", time_in_force="gtc"))
    clock.at = OPEN + timedelta(days=7)
    assert broker.get_order(order.id).status == "new"
    clock.at = OPEN + timedelta(days=91)
    expired = broker.get_order(order.id)
    # 90 days on is Monday 2027-02-22, a full session: it expires at that close.
    assert (expired.status, expired.expired_at) == (
        "expired",
        datetime(2027, 2, 22, 21, 0, tzinfo=UTC),
    )
    assert expired.filled_qty == 0
