"""The paper exchange's fill activities, cancel-all and close-position (Alpaca's semantics)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradedesk.broker.errors import OrderRejected
from tradedesk.broker.sim import market
from tradedesk.broker.types import CancelResult, LegRequest

from .conftest import OPEN, request


def filled_in_pieces(broker, clock, qty: str = "1500"):
    order = broker.submit_order(request("INTC", qty=qty))
    while broker.get_order(order.id).status != "filled":
        clock.advance(seconds=1)
    return order


def test_fill_activities_are_the_executions_paged_by_the_last_id(broker, clock):
    order = filled_in_pieces(broker, clock)
    executions = [u for _, u in broker.events_after(0) if u.is_execution]
    assert len(executions) >= 3

    pages = []
    token = None
    while True:
        page = broker.list_fill_activities(page_size=2, page_token=token)
        if not page:
            break
        pages.append(page)
        token = page[-1].id
    activities = [a for page in pages for a in page]
    assert len(pages) >= 2 and all(len(page) == 2 for page in pages[:-1])
    assert activities == list(broker.iter_fill_activities(page_size=2))
    # Newest first; each one an execution of the order, with its own price and qty.
    assert [(a.qty, a.price) for a in activities] == [
        (u.qty, u.price) for u in reversed(executions)
    ]
    assert [a.id for a in activities] == [u.execution_id for u in reversed(executions)]
    assert sum(a.qty for a in activities) == Decimal("1500")
    newest, oldest = activities[0], activities[-1]
    assert (newest.type, newest.order_status, newest.leaves_qty) == ("fill", "filled", 0)
    assert (oldest.type, oldest.cum_qty) == ("partial_fill", market.quote("INTC", OPEN).ask_size)
    assert {(a.order_id, a.symbol, a.side) for a in activities} == {(order.id, "INTC", "buy")}
    ascending = list(broker.iter_fill_activities(direction="asc", page_size=100))
    assert ascending == activities[::-1]
    assert list(broker.iter_fill_activities(after=clock.at)) == []


def test_only_executions_carry_an_execution_id(broker, clock):
    filled_in_pieces(broker, clock, qty="1200")
    updates = [u for _, u in broker.events_after(0)]
    assert [bool(u.execution_id) for u in updates] == [u.is_execution for u in updates]


def test_cancel_all_cancels_every_open_order_with_its_legs(broker):
    resting = broker.submit_order(request(type="limit", limit_price="100", time_in_force="gtc"))
    bracket = broker.submit_order(
        request(
            type="limit",
            limit_price="101",
            time_in_force="gtc",
            order_class="bracket",
            take_profit=LegRequest(limit_price=Decimal("300")),
            stop_loss=LegRequest(stop_price=Decimal("90")),
        )
    )
    filled = broker.submit_order(request())

    results = broker.cancel_all_orders()

    assert results == [CancelResult(resting.id, 200), CancelResult(bracket.id, 200)]
    statuses = {o.id: o.status for o in broker.list_orders()}
    assert statuses == {resting.id: "canceled", bracket.id: "canceled", filled.id: "filled"}
    assert {leg.status for leg in broker.get_order(bracket.id).legs} == {"canceled"}
    assert broker.cancel_all_orders() == []


def test_close_position_sells_the_whole_long(broker):
    broker.submit_order(request(qty="3"))
    order = broker.close_position("AAPL")
    assert (order.side, order.type, order.qty, order.status) == ("sell", "market", 3, "filled")
    assert broker.list_positions() == []
    with pytest.raises(OrderRejected) as missing:
        broker.close_position("AAPL")
    assert (missing.value.http_status, missing.value.code) == (404, 40410000)


def test_close_all_reports_a_position_its_open_orders_hold(broker):
    broker.submit_order(request(qty="3"))
    broker.submit_order(request("MSFT", qty="2"))
    broker.submit_order(request(side="sell", type="limit", limit_price="9999", time_in_force="gtc"))

    held, closed = broker.close_all_positions()

    assert (held.symbol, held.status, held.code, held.ok) == ("AAPL", 403, 40310000, False)
    assert "insufficient qty available" in held.message and held.order is None
    assert (closed.symbol, closed.status, closed.ok) == ("MSFT", 200, True)
    assert (closed.order.side, closed.order.qty) == ("sell", 2)
    assert [p.symbol for p in broker.list_positions()] == ["AAPL"]


def test_close_all_after_canceling_the_orders_closes_everything(broker):
    broker.submit_order(request(qty="3"))
    broker.submit_order(request(side="sell", type="limit", limit_price="9999", time_in_force="gtc"))
    [closed] = broker.close_all_positions(cancel_orders=True)
    assert (closed.symbol, closed.ok, closed.order.qty) == ("AAPL", True, 3)
    assert broker.list_positions() == []


def test_list_assets_is_the_universe_each_one_as_get_asset_has_it(broker):
    assets = broker.list_assets()
    assert len(assets) > 20 and broker.get_asset("AAPL") in assets
