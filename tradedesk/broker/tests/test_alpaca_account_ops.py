"""Account activities, cancel-all and close-position on the Alpaca adapter (loopback fake)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from tradedesk.broker.alpaca import AlpacaBroker
from tradedesk.broker.errors import BrokerUnavailable, OrderRejected, RateLimited
from tradedesk.broker.types import CancelResult, FeeActivity, FillActivity

from .alpaca_fakes import FakeAlpacaREST, load_fixture

ACTIVITIES = "/v2/account/activities/FILL"
FEES = "/v2/account/activities"


def partially_filled(fake: FakeAlpacaREST, executions: list[tuple[str, str]]) -> dict:
    order = fake.add_order(qty=10, type="limit", limit_price=150, time_in_force="gtc")
    for qty, price in executions:
        fake.execute(order["id"], qty, price)
    return order


def test_documented_fill_activity_arrives_as_decimals_and_utc(fake_alpaca, broker: AlpacaBroker):
    fake_alpaca.activities = [load_fixture("account_activity_fill.json")]
    [activity] = broker.list_fill_activities()
    assert activity == FillActivity(
        id="20190524113406977::8efc7b9a-8b2b-4000-9955-d36e7db0df74",
        order_id="904837e3-3b76-47ec-b432-046db621571b",
        symbol="LPCN",
        side="buy",
        type="fill",
        price=Decimal("1.63"),
        qty=Decimal("1"),
        cum_qty=Decimal("1"),
        leaves_qty=Decimal("0"),
        transaction_time=datetime(2019, 5, 24, 15, 34, 6, 977000, tzinfo=UTC),
        order_status="",
    )


def test_fill_activities_page_by_the_last_id(fake_alpaca, broker: AlpacaBroker):
    executions = [("1", "149.01"), ("2", "149.02"), ("3", "149.03"), ("1", "149.04"), ("3", "149")]
    order = partially_filled(fake_alpaca, executions)
    activities = list(broker.iter_fill_activities(page_size=2))
    # Newest first (Alpaca's default direction), each once, across three pages.
    assert [(a.qty, a.price) for a in activities] == [
        (Decimal(q), Decimal(p)) for q, p in reversed(executions)
    ]
    assert len({a.id for a in activities}) == 5
    newest = activities[0]
    assert (newest.type, newest.order_status, newest.cum_qty, newest.leaves_qty) == (
        "fill",
        "filled",
        Decimal("10"),
        Decimal("0"),
    )
    assert (newest.order_id, newest.side, newest.symbol) == (order["id"], "buy", "AAPL")
    assert activities[-1].type == "partial_fill"
    assert all(a.transaction_time.tzinfo == UTC for a in activities)
    pages = fake_alpaca.requests_to("GET", ACTIVITIES)
    assert [r.query.get("page_token") for r in pages] == [None, activities[1].id, activities[3].id]
    assert {r.query["page_size"] for r in pages} == {"2"}


def test_fill_activities_ascending_after_a_time(fake_alpaca, broker: AlpacaBroker):
    partially_filled(fake_alpaca, [("1", "10"), ("1", "11"), ("1", "12")])
    second = fake_alpaca.activities[1]["transaction_time"]
    after = datetime.fromisoformat(second.replace("Z", "+00:00")[:26] + "+00:00")
    prices = [a.price for a in broker.iter_fill_activities(direction="asc", after=after)]
    assert prices == [Decimal("12")]
    assert fake_alpaca.requests_to("GET", ACTIVITIES)[0].query["direction"] == "asc"


def test_a_whole_page_of_activities_asks_for_one_more(fake_alpaca, broker: AlpacaBroker):
    partially_filled(fake_alpaca, [("1", "10"), ("1", "11")])
    assert len(list(broker.iter_fill_activities(page_size=2))) == 2
    # The second page is empty: that, not a guess, ends the paging.
    assert len(fake_alpaca.requests_to("GET", ACTIVITIES)) == 2


def test_activity_errors_are_the_desks(fake_alpaca, broker: AlpacaBroker):
    fake_alpaca.fail_next(429, {"message": "too many requests"}, {"Retry-After": "3"})
    with pytest.raises(RateLimited) as limited:
        broker.list_fill_activities()
    assert limited.value.retry_after == 3
    fake_alpaca.fail_next(200, [{"id": "x"}])  # an activity without its fields
    with pytest.raises(BrokerUnavailable):
        broker.list_fill_activities()


def test_a_fee_activity_arrives_as_a_positive_decimal_of_its_day(fake_alpaca, broker):
    fake_alpaca.fee_activities = [load_fixture("account_activity_fee.json")]
    [fee] = broker.list_fee_activities()
    assert fee == FeeActivity(
        id="20190801011955195::5f596936-6f23-4cef-bdf1-3806aae57dbf",
        activity_type="FEE",
        date=date(2019, 8, 1),
        amount=Decimal("0.02"),
        sub_type="REG",
        description="REG fee",
        status="executed",
    )
    # One request for both fee types, through the adapter's transport.
    [request] = fake_alpaca.requests_to("GET", FEES)
    assert request.query["activity_types"] == "FEE,PTC"
    assert request.headers["apca-api-key-id"] == fake_alpaca.key_id


def test_fee_activities_page_by_the_last_id_and_keep_their_links(fake_alpaca, broker):
    order = fake_alpaca.add_order()
    for day in range(1, 6):
        fake_alpaca.charge_fee(date=f"2026-03-0{day}", amount=f"0.0{day}")
    fake_alpaca.charge_fee(
        date="2026-03-06",
        amount="1.5",
        activity_type="PTC",
        sub_type=None,
        symbol="AAPL",
        order_id=order["id"],
    )
    fake_alpaca.activities.append(load_fixture("account_activity_fill.json"))  # not a fee
    fees = list(broker.iter_fee_activities(direction="asc", page_size=2))
    assert [f.amount for f in fees] == [Decimal(x) for x in ("0.01", "0.02", "0.03", "0.04")] + [
        Decimal("0.05"),
        Decimal("1.5"),
    ]
    assert len({f.id for f in fees}) == 6
    pass_through = fees[-1]
    assert (pass_through.activity_type, pass_through.sub_type, pass_through.date) == (
        "PTC",
        "",
        date(2026, 3, 6),
    )
    assert (pass_through.symbol, pass_through.order_id) == ("AAPL", order["id"])
    pages = fake_alpaca.requests_to("GET", FEES)
    assert [r.query.get("page_token") for r in pages] == [None, fees[1].id, fees[3].id, fees[5].id]
    assert not fake_alpaca.requests_to("GET", ACTIVITIES)


def test_fee_activities_after_a_day(fake_alpaca, broker):
    for day in ("2026-03-02", "2026-03-03", "2026-03-04"):
        fake_alpaca.charge_fee(date=day, amount="0.01")
    after = datetime(2026, 3, 2, 12, tzinfo=UTC)
    assert [f.date for f in broker.iter_fee_activities(after=after)] == [
        date(2026, 3, 4),
        date(2026, 3, 3),
    ]
    assert fake_alpaca.requests_to("GET", FEES)[0].query["after"] == "2026-03-02T12:00:00+00:00"


def test_a_malformed_fee_activity_is_the_brokers_failure(fake_alpaca, broker):
    for junk in ({"id": "x"}, {**load_fixture("account_activity_fee.json"), "net_amount": "abc"}):
        fake_alpaca.fail_next(200, [junk])
        with pytest.raises(BrokerUnavailable):
            broker.list_fee_activities()
    fake_alpaca.fail_next(200, [{**load_fixture("account_activity_fee.json"), "date": "soon"}])
    with pytest.raises(BrokerUnavailable):
        broker.list_fee_activities()


def test_cancel_all_reports_each_order_refusals_included(fake_alpaca, broker: AlpacaBroker):
    canceled = fake_alpaca.add_order(type="limit", limit_price=100, time_in_force="gtc")
    refused = fake_alpaca.add_order(type="limit", limit_price=101, time_in_force="gtc")
    filled = fake_alpaca.fill(fake_alpaca.add_order()["id"], "150")
    body = load_fixture("cancel_all_orders_207_mixed_sdk_test.json")[1]["body"]
    fake_alpaca.cancel_refusals[refused["id"]] = (404, body)

    results = broker.cancel_all_orders()

    assert results == [
        CancelResult(order_id=canceled["id"], status=200),
        CancelResult(order_id=refused["id"], status=404, code=40410000, message="order not found"),
    ]
    assert [r.ok for r in results] == [True, False]
    assert fake_alpaca.orders[canceled["id"]]["status"] == "canceled"
    assert fake_alpaca.orders[refused["id"]]["status"] == "new"
    assert fake_alpaca.orders[filled["id"]]["status"] == "filled"


def test_cancel_all_parses_alpacas_own_207_body(fake_alpaca, broker: AlpacaBroker):
    fake_alpaca.fail_next(207, load_fixture("cancel_all_orders_207_mixed_sdk_test.json"))
    ok, missing = broker.cancel_all_orders()
    assert (ok.order_id, ok.status, ok.ok) == ("497f6eca-6276-4993-bfeb-53cbbbba6f08", 200, True)
    assert (missing.status, missing.code, missing.ok) == (404, 40410000, False)


def test_close_position_places_the_closing_order(fake_alpaca, broker: AlpacaBroker):
    fake_alpaca.positions = [
        {**position, "symbol": "MSFT"}
        for position in fake_alpaca.positions
        if position["qty"] == position["qty_available"]
    ]
    order = broker.close_position("MSFT")
    assert (order.symbol, order.side, order.type, order.qty) == ("MSFT", "sell", "market", 2)
    assert fake_alpaca.orders[order.id]["time_in_force"] == "day"
    with pytest.raises(OrderRejected) as missing:
        broker.close_position("TSLA")
    assert missing.value.http_status == 404


def test_close_position_held_by_open_orders_is_refused(fake_alpaca, broker: AlpacaBroker):
    # The documented AAPL position: 5 shares, 4 available.
    with pytest.raises(OrderRejected) as refused:
        broker.close_position("AAPL")
    assert (refused.value.http_status, refused.value.code) == (403, 40310000)
    assert "available: 4" in refused.value.message
    assert not fake_alpaca.requests_to("POST", "/v2/orders")


def test_close_all_positions_reports_each_position(fake_alpaca, broker: AlpacaBroker):
    held, free = fake_alpaca.positions  # AAPL 5 (4 available), then 2 (all available)
    fake_alpaca.positions = [held, {**free, "symbol": "MSFT"}]
    resting = fake_alpaca.add_order(type="limit", limit_price=100, time_in_force="gtc")

    refused, closed = broker.close_all_positions(cancel_orders=True)

    assert (refused.symbol, refused.status, refused.ok, refused.order) == ("AAPL", 403, False, None)
    assert refused.code == 40310000 and "insufficient qty" in refused.message
    assert (closed.symbol, closed.status, closed.ok) == ("MSFT", 200, True)
    assert (closed.order.side, closed.order.qty, closed.order.status) == ("sell", 2, "accepted")
    [request] = fake_alpaca.requests_to("DELETE", "/v2/positions")
    assert request.query == {"cancel_orders": "True"}
    assert fake_alpaca.orders[resting["id"]]["status"] == "canceled"


def test_close_all_positions_parses_the_documented_item(fake_alpaca, broker: AlpacaBroker):
    fake_alpaca.fail_next(207, [load_fixture("close_all_positions_207_item.json")])
    [result] = broker.close_all_positions()
    assert (result.symbol, result.status, result.ok) == ("AAPL", 200, True)
    assert result.order.id == "f7f25e89-939a-4587-aaf6-414a6b3c341d"
    assert (result.order.qty, result.order.side, result.order.status) == (2, "sell", "accepted")
    assert result.order.created_at.tzinfo == UTC
    [request] = fake_alpaca.requests_to("DELETE", "/v2/positions")
    assert request.query == {}  # no cancel_orders unless asked


def test_list_assets_asks_for_active_us_equities(fake_alpaca, broker: AlpacaBroker):
    assets = broker.list_assets()
    assert {a.symbol for a in assets} == {"AAPL", "MSFT"}
    [sent] = fake_alpaca.requests_to("GET", "/v2/assets")
    assert sent.query == {"status": "active", "asset_class": "us_equity"}
