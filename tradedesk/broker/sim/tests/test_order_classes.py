"""Bracket, OTO and OCO orders: legs as child orders, held until the entry fills, then OCO."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from tradedesk.broker.errors import OrderRejected
from tradedesk.broker.sim import market
from tradedesk.broker.types import LegRequest, ReplaceRequest

from .conftest import OPEN, request


def _span(minutes: int):
    return market.span("AAPL", OPEN + timedelta(seconds=1), OPEN + timedelta(minutes=minutes))


def test_bracket_legs_are_held_until_the_entry_fills_then_one_exit_cancels_the_other(broker, clock):
    _open, _high, low = _span(10)
    entry = low + Decimal("0.01")
    order = broker.submit_order(
        request(
            type="limit",
            limit_price=entry,
            qty="3",
            order_class="bracket",
            take_profit=LegRequest(limit_price=entry + 200),
            stop_loss=LegRequest(stop_price=entry - 200),
        )
    )
    assert order.status == "new"
    take_profit, stop_loss = order.legs
    assert [(leg.type, leg.side, leg.status) for leg in order.legs] == [
        ("limit", "sell", "held"),
        ("stop", "sell", "held"),
    ]
    assert (take_profit.limit_price, stop_loss.stop_price) == (entry + 200, entry - 200)

    clock.advance(minutes=10)
    order = broker.get_order(order.id)
    assert order.status == "filled"
    assert [leg.status for leg in order.legs] == ["new", "new"]

    broker.replace_order(take_profit.id, ReplaceRequest(limit_price=low))  # now marketable
    clock.advance(seconds=1)
    order = broker.get_order(order.id)
    statuses = {leg.type: leg.status for leg in order.legs}
    assert statuses == {"limit": "filled", "stop": "canceled"}
    assert broker.list_positions() == []


def test_bracket_with_market_entry_activates_its_legs_at_once(broker):
    ask = market.quote("AAPL", OPEN).ask_price
    order = broker.submit_order(
        request(
            qty="2",
            order_class="bracket",
            take_profit=LegRequest(limit_price=ask + 50),
            stop_loss=LegRequest(stop_price=ask - 50, limit_price=ask - 51),
        )
    )
    assert order.status == "filled"
    assert [(leg.type, leg.status, leg.qty) for leg in order.legs] == [
        ("limit", "new", 2),
        ("stop_limit", "new", 2),
    ]


def test_canceling_a_bracket_entry_cancels_its_held_legs(broker):
    bid = market.quote("AAPL", OPEN).bid_price
    order = broker.submit_order(
        request(
            type="limit",
            limit_price=bid - 20,
            order_class="bracket",
            take_profit=LegRequest(limit_price=bid + 20),
            stop_loss=LegRequest(stop_price=bid - 40),
        )
    )
    broker.cancel_order(order.id)
    order = broker.get_order(order.id)
    assert [order.status, *[leg.status for leg in order.legs]] == ["canceled"] * 3


@pytest.mark.parametrize(
    ("take_profit", "stop_loss"),
    [(Decimal("-10"), Decimal("-20")), (Decimal("10"), Decimal("20")), (None, Decimal("-20"))],
)
def test_bracket_exits_on_the_wrong_side_or_missing_are_refused(broker, take_profit, stop_loss):
    ask = market.quote("AAPL", OPEN).ask_price
    with pytest.raises(OrderRejected) as rejected:
        broker.submit_order(
            request(
                order_class="bracket",
                take_profit=LegRequest(limit_price=ask + take_profit) if take_profit else None,
                stop_loss=LegRequest(stop_price=ask + stop_loss),
            )
        )
    assert rejected.value.http_status == 422
    assert broker.list_orders() == []


def test_oto_has_one_exit_leg(broker):
    ask = market.quote("AAPL", OPEN).ask_price
    order = broker.submit_order(
        request(order_class="oto", stop_loss=LegRequest(stop_price=ask - 10))
    )
    assert [(leg.type, leg.stop_price, leg.status) for leg in order.legs] == [
        ("stop", ask - 10, "new")
    ]


def test_oco_exits_an_existing_position_and_the_stop_cancels_the_take_profit(broker, clock):
    broker.submit_order(request(qty="5"))
    _open, high, low = _span(10)
    order = broker.submit_order(
        request(
            side="sell",
            type="limit",
            qty="5",
            time_in_force="gtc",
            order_class="oco",
            take_profit=LegRequest(limit_price=high + 20),
            stop_loss=LegRequest(stop_price=low + Decimal("0.05")),
        )
    )
    assert (order.type, order.limit_price, order.status) == ("limit", high + 20, "new")
    [stop_leg] = order.legs
    assert (stop_leg.type, stop_leg.side, stop_leg.status) == ("stop", "sell", "new")
    clock.advance(minutes=10)
    order = broker.get_order(order.id)
    assert (order.status, order.legs[0].status) == ("canceled", "filled")
    assert broker.list_positions() == []


def test_an_oco_pair_counts_once_against_the_shares_held(broker):
    broker.submit_order(request("PLTR", qty="5"))
    bid = market.quote("PLTR", OPEN).bid_price
    broker.submit_order(
        request(
            "PLTR",
            side="sell",
            type="limit",
            qty="5",
            order_class="oco",
            take_profit=LegRequest(limit_price=bid + 5),
            stop_loss=LegRequest(stop_price=bid - 5),
        )
    )
    with pytest.raises(OrderRejected) as rejected:
        broker.submit_order(request("PLTR", side="sell", type="limit", limit_price=bid + 6))
    assert rejected.value.http_status == 403
    assert "insufficient qty available" in rejected.value.message


def test_the_event_feed_and_order_list_carry_legs_in_order_without_a_query_per_order(broker):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tradedesk.broker.sim import exchange

    def place_bracket() -> None:
        price = Decimal("100")
        broker.submit_order(
            request(
                type="limit",
                limit_price=price,
                qty="1",
                order_class="bracket",
                take_profit=LegRequest(limit_price=price + 200),
                stop_loss=LegRequest(stop_price=price - 50),
            )
        )

    def queries(call) -> int:
        with CaptureQueriesContext(connection) as captured:
            call()
        return len(captured)

    place_bracket()
    one = (queries(lambda: exchange.events_after(0)), queries(lambda: broker.list_orders()))
    for _ in range(4):
        place_bracket()
    five = (queries(lambda: exchange.events_after(0)), queries(lambda: broker.list_orders()))
    assert five == one

    feed = exchange.events_after(0)
    assert len({update.order.id for _, update in feed}) >= 5
    for order in [update.order for _, update in feed] + broker.list_orders():
        if order.order_class == "bracket" and order.side == "buy":  # the entries, not the legs
            assert [leg.type for leg in order.legs] == ["limit", "stop"]
