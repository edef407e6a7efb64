"""Market, limit, stop, stop-limit and trailing-stop fills (and non-fills) on the paper exchange."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from tradedesk.broker.sim import market

from .conftest import OPEN, request


def _gap(symbol: str, minutes: int) -> tuple[Decimal, Decimal, Decimal]:
    """Open, high and low of `symbol` between one second after OPEN and `minutes` later."""
    return market.span(symbol, OPEN + timedelta(seconds=1), OPEN + timedelta(minutes=minutes))


def test_market_buy_fills_at_the_ask_and_moves_cash_and_position(broker):
    ask = market.quote("AAPL", OPEN).ask_price
    order = broker.submit_order(request(qty="3"))
    assert (order.status, order.filled_qty, order.filled_avg_price) == ("filled", 3, ask)
    assert order.filled_at == OPEN
    [position] = broker.list_positions()
    assert (position.symbol, position.qty, position.avg_entry_price) == ("AAPL", 3, ask)
    assert broker.get_account().cash == Decimal("100000") - 3 * ask


def test_market_order_larger_than_the_quote_fills_one_quote_second_at_a_time(broker, clock):
    quote = market.quote("INTC", OPEN)
    order = broker.submit_order(request("INTC", qty="2000"))
    assert (order.status, order.filled_qty) == ("partially_filled", quote.ask_size)
    # Same quote second: nothing more trades.
    assert broker.get_order(order.id).filled_qty == quote.ask_size
    filled = quote.ask_size
    seconds = 0
    while filled < 2000:
        clock.advance(seconds=1)
        seconds += 1
        size = market.quote("INTC", clock.at).ask_size
        current = broker.get_order(order.id)
        assert current.filled_qty == min(Decimal("2000"), filled + size)
        filled = current.filled_qty
    assert current.status == "filled"
    events = [update.event for _, update in broker.events_after(0)]
    assert events == ["new"] + ["partial_fill"] * seconds + ["fill"]


def test_limit_buy_below_the_market_rests_and_fills_at_its_price_when_crossed_in_a_gap(
    broker, clock
):
    _open, _high, low = _gap("AAPL", 10)
    limit = low + Decimal("0.01")
    assert limit < market.quote("AAPL", OPEN).ask_price
    order = broker.submit_order(request(type="limit", limit_price=limit, qty="5"))
    assert order.status == "new"
    clock.advance(minutes=10)
    filled = broker.get_order(order.id)
    assert (filled.status, filled.filled_qty, filled.filled_avg_price) == ("filled", 5, limit)
    assert OPEN < filled.filled_at <= clock.at
    assert broker.list_positions()[0].avg_entry_price == limit


def test_limit_buy_never_reached_stays_open(broker, clock):
    _open, _high, low = _gap("AAPL", 10)
    order = broker.submit_order(request(type="limit", limit_price=low - 1))
    clock.advance(minutes=10)
    assert broker.get_order(order.id).status == "new"
    assert broker.list_positions() == []


def test_marketable_limit_sell_fills_at_the_bid(broker):
    broker.submit_order(request(qty="2"))
    bid = market.quote("AAPL", OPEN).bid_price
    order = broker.submit_order(request(side="sell", type="limit", limit_price=bid - 5, qty="2"))
    assert (order.status, order.filled_avg_price) == ("filled", bid)


def test_sell_stop_triggers_when_the_price_falls_to_it_and_executes_as_market(broker, clock):
    broker.submit_order(request(qty="4"))
    _open, _high, low = _gap("AAPL", 10)
    stop = low + Decimal("0.05")
    order = broker.submit_order(request(side="sell", type="stop", stop_price=stop, qty="4"))
    assert order.status == "new"
    clock.advance(minutes=10)
    filled = broker.get_order(order.id)
    assert filled.status == "filled"
    assert filled.filled_avg_price <= stop
    assert broker.list_positions() == []


def test_stop_not_reached_does_not_trigger(broker, clock):
    broker.submit_order(request(qty="4"))
    _open, _high, low = _gap("AAPL", 10)
    order = broker.submit_order(request(side="sell", type="stop", stop_price=low - 1, qty="4"))
    clock.advance(minutes=10)
    assert broker.get_order(order.id).status == "new"


def test_stop_limit_triggers_then_rests_as_a_limit(broker, clock):
    broker.submit_order(request(qty="2"))
    _open, high, low = _gap("AAPL", 10)
    stop = low + Decimal("0.05")
    # Triggered on the way down, but the sell limit is above anything seen afterwards.
    resting = broker.submit_order(
        request(side="sell", type="stop_limit", stop_price=stop, limit_price=high + 5, qty="1")
    )
    filling = broker.submit_order(
        request(side="sell", type="stop_limit", stop_price=stop, limit_price=low - 1, qty="1")
    )
    clock.advance(minutes=10)
    assert broker.get_order(resting.id).status == "new"
    filled = broker.get_order(filling.id)
    assert filled.status == "filled"
    assert low - 1 <= filled.filled_avg_price <= stop


def test_trailing_stop_tracks_the_high_water_mark_without_triggering(broker, clock):
    broker.submit_order(request(qty="1"))
    hwm = market.trade("AAPL", OPEN).price
    order = broker.submit_order(
        request(side="sell", type="trailing_stop", trail_price="50", time_in_force="gtc")
    )
    assert (order.hwm, order.stop_price) == (hwm, hwm - 50)
    clock.advance(minutes=30)
    current = broker.get_order(order.id)
    _open, high, _low = _gap("AAPL", 30)
    assert current.status == "new"
    assert current.hwm == max(hwm, high) > hwm
    assert current.stop_price == current.hwm - 50


def test_trailing_stop_percent_triggers_on_a_pullback_from_the_high(broker, clock):
    broker.submit_order(request(qty="1"))
    order = broker.submit_order(request(side="sell", type="trailing_stop", trail_percent="0.05"))
    clock.advance(minutes=30)
    filled = broker.get_order(order.id)
    assert filled.status == "filled"
    assert filled.stop_price == (filled.hwm * Decimal("0.9995")).quantize(Decimal("0.01"))
    assert filled.filled_avg_price <= filled.stop_price


def test_buy_trailing_stop_follows_the_low_water_mark(broker, clock):
    low_mark = market.trade("AAPL", OPEN).price
    order = broker.submit_order(request(type="trailing_stop", trail_price="40"))
    assert order.stop_price == low_mark + 40
    clock.advance(minutes=10)
    _open, _high, low = _gap("AAPL", 10)
    current = broker.get_order(order.id)
    assert current.hwm == min(low_mark, low)
    assert current.stop_price == current.hwm + 40
