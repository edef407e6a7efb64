"""AlpacaBroker against the loopback fake: every Broker method, with alpaca-py doing real HTTP."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from tradedesk.broker.alpaca import AlpacaBroker
from tradedesk.broker.errors import NotCancelable, OrderNotFound, OrderRejected
from tradedesk.broker.types import LegRequest, OrderRequest, ReplaceRequest

from .alpaca_fakes import FakeAlpacaREST, load_fixture


def order_request(**fields) -> OrderRequest:
    defaults = {
        "symbol": "AAPL",
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "client_order_id": f"td-{uuid.uuid4()}",
        "qty": Decimal("2"),
    }
    return OrderRequest(**(defaults | fields))


def last_order_body(fake: FakeAlpacaREST) -> dict:
    return fake.requests_to("POST", "/v2/orders")[-1].body


def test_account_uses_decimals_and_the_current_schema(broker: AlpacaBroker):
    account = broker.get_account()
    assert account.account_id == "1d9eed04-be39-4e01-9b84-a48ac5bbafcf"
    assert account.status == "ACTIVE"
    assert account.cash == Decimal("122086.5")
    assert account.buying_power == Decimal("245432.61")
    # Kept to the last digit Alpaca sends: no float on the way.
    assert account.last_equity == Decimal("122011.09751111286868")
    assert account.multiplier == Decimal("2")
    assert account.shorting_enabled and not account.trading_blocked


def test_clock_is_utc(broker: AlpacaBroker):
    clock = broker.get_clock()
    assert clock.timestamp == datetime(2024, 7, 18, 8, 10, 33, 389152, tzinfo=UTC)
    assert clock.next_open == datetime(2024, 7, 18, 13, 30, tzinfo=UTC)
    assert clock.next_close == datetime(2024, 7, 18, 20, 0, tzinfo=UTC)
    assert clock.is_open is False


def test_calendar_turns_market_wall_clock_into_utc(broker: AlpacaBroker, fake_alpaca):
    (day,) = broker.get_calendar(date(2022, 2, 1), date(2022, 2, 1))
    assert day.date == date(2022, 2, 1)
    assert day.open == datetime(2022, 2, 1, 14, 30, tzinfo=UTC)  # 09:30 EST
    assert day.close == datetime(2022, 2, 1, 21, 0, tzinfo=UTC)
    assert fake_alpaca.requests_to("GET", "/v2/calendar")[-1].query == {
        "start": "2022-02-01",
        "end": "2022-02-01",
    }


def test_asset_and_unknown_asset(broker: AlpacaBroker):
    asset = broker.get_asset("AAPL")
    assert (asset.symbol, asset.exchange, asset.asset_class) == ("AAPL", "NASDAQ", "us_equity")
    assert asset.fractionable and asset.tradable
    with pytest.raises(OrderRejected) as info:
        broker.get_asset("NOPE")
    assert not isinstance(info.value, OrderNotFound)
    assert (info.value.http_status, info.value.code) == (404, 40410000)


def test_positions(broker: AlpacaBroker):
    first, second = broker.list_positions()
    assert first.qty == Decimal("5") and first.side == "long"
    assert second.unrealized_plpc == Decimal("-0.0028035244307129")
    assert second.asset_id == "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415"


@pytest.mark.parametrize(
    ("fields", "wire"),
    [
        ({"type": "market", "qty": Decimal("2")}, {"type": "market", "qty": 2.0}),
        (
            {"type": "market", "qty": None, "notional": Decimal("500.25")},
            {"type": "market", "notional": 500.25},
        ),
        (
            {"type": "market", "qty": Decimal("0.123456789")},
            {"type": "market", "qty": 0.123456789},
        ),
        (
            {"type": "limit", "limit_price": Decimal("150.10"), "time_in_force": "gtc"},
            {"type": "limit", "limit_price": 150.1, "time_in_force": "gtc"},
        ),
        (
            {"type": "limit", "limit_price": Decimal("150"), "extended_hours": True},
            {"type": "limit", "limit_price": 150.0, "extended_hours": True},
        ),
        (
            {"type": "stop", "stop_price": Decimal("140"), "time_in_force": "opg"},
            {"type": "stop", "stop_price": 140.0, "time_in_force": "opg"},
        ),
        (
            {"type": "stop_limit", "stop_price": Decimal("140"), "limit_price": Decimal("139.5")},
            {"type": "stop_limit", "stop_price": 140.0, "limit_price": 139.5},
        ),
        (
            {"type": "trailing_stop", "side": "sell", "trail_price": Decimal("7")},
            {"type": "trailing_stop", "side": "sell", "trail_price": 7.0},
        ),
        (
            {"type": "trailing_stop", "side": "sell", "trail_percent": Decimal("1.5")},
            {"type": "trailing_stop", "side": "sell", "trail_percent": 1.5},
        ),
        ({"time_in_force": "cls"}, {"time_in_force": "cls"}),
        ({"time_in_force": "ioc"}, {"time_in_force": "ioc"}),
        ({"time_in_force": "fok"}, {"time_in_force": "fok"}),
    ],
)
def test_submit_order_types_and_time_in_force(broker, fake_alpaca, fields, wire):
    request = order_request(**fields)
    order = broker.submit_order(request)
    body = last_order_body(fake_alpaca)
    assert body.items() >= wire.items()
    assert body["client_order_id"] == request.client_order_id
    assert "order_class" not in body  # simple is Alpaca's default
    assert order.client_order_id == request.client_order_id
    assert (order.type, order.side, order.time_in_force) == (
        request.type,
        request.side,
        request.time_in_force,
    )
    assert order.order_class == "simple"  # Alpaca answers "" for a simple order
    assert order.status == "accepted" and order.is_open
    assert order.qty == request.qty and order.notional == request.notional
    assert order.limit_price == request.limit_price
    assert order.stop_price == request.stop_price
    assert order.trail_price == request.trail_price
    assert order.trail_percent == request.trail_percent
    assert order.extended_hours == request.extended_hours
    assert order.created_at.tzinfo == UTC and order.submitted_at is not None


def test_trailing_stop_reports_high_water_mark(broker):
    order = broker.submit_order(
        order_request(type="trailing_stop", side="sell", trail_price=Decimal("7"))
    )
    assert order.hwm == Decimal("172.78")


def test_bracket_order_sends_legs_and_gets_them_nested(broker, fake_alpaca):
    order = broker.submit_order(
        order_request(
            type="limit",
            limit_price=Decimal("150"),
            time_in_force="gtc",
            order_class="bracket",
            take_profit=LegRequest(limit_price=Decimal("170")),
            stop_loss=LegRequest(stop_price=Decimal("140"), limit_price=Decimal("139.5")),
        )
    )
    body = last_order_body(fake_alpaca)
    assert body["order_class"] == "bracket"
    assert body["take_profit"] == {"limit_price": 170.0}
    assert body["stop_loss"] == {"stop_price": 140.0, "limit_price": 139.5}
    assert order.order_class == "bracket"
    take_profit, stop_loss = order.legs
    assert (take_profit.type, take_profit.side, take_profit.limit_price) == (
        "limit",
        "sell",
        Decimal("170"),
    )
    assert (stop_loss.type, stop_loss.stop_price, stop_loss.status) == (
        "stop_limit",
        Decimal("140"),
        "held",
    )
    assert broker.get_order(order.id).legs == order.legs


@pytest.mark.parametrize(
    ("order_class", "legs"),
    [
        (
            "oco",
            {
                "take_profit": LegRequest(limit_price=Decimal("170")),
                "stop_loss": LegRequest(stop_price=Decimal("140")),
            },
        ),
        ("oto", {"stop_loss": LegRequest(stop_price=Decimal("140"))}),
    ],
)
def test_oco_and_oto_orders(broker, fake_alpaca, order_class, legs):
    order = broker.submit_order(
        order_request(type="limit", limit_price=Decimal("150"), order_class=order_class, **legs)
    )
    body = last_order_body(fake_alpaca)
    assert body["order_class"] == order_class
    assert body["stop_loss"] == {"stop_price": 140.0}
    assert order.order_class == order_class
    assert len(order.legs) == len(legs)


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "limit"},  # no limit_price
        {"type": "trailing_stop"},  # neither trail
        {"type": "market", "notional": Decimal("10")},  # qty and notional
        {"type": "iceberg"},
        {"client_order_id": ""},
        {"order_class": "bracket", "type": "limit", "limit_price": Decimal("1")},  # no legs
    ],
)
def test_malformed_orders_are_rejected_before_any_request(broker, fake_alpaca, fields):
    with pytest.raises(OrderRejected) as info:
        broker.submit_order(order_request(**fields))
    assert info.value.code == "invalid_request"
    assert fake_alpaca.requests_to("POST", "/v2/orders") == []


def test_duplicate_client_order_id_is_rejected(broker):
    request = order_request()
    broker.submit_order(request)
    with pytest.raises(OrderRejected) as info:
        broker.submit_order(request)
    assert (info.value.http_status, info.value.code) == (422, 40010001)
    assert "client_order_id" in info.value.message


def test_get_order_by_id_and_client_id(broker):
    placed = broker.submit_order(order_request(type="limit", limit_price=Decimal("150")))
    assert broker.get_order(placed.id) == placed
    assert broker.get_order_by_client_id(placed.client_order_id) == placed


def test_unknown_orders_are_not_found(broker, fake_alpaca):
    with pytest.raises(OrderNotFound):
        broker.get_order(str(uuid.uuid4()))
    with pytest.raises(OrderNotFound):
        broker.get_order_by_client_id("never-sent")
    with pytest.raises(OrderNotFound):
        broker.get_order("not-a-uuid")  # alpaca-py refuses it without asking Alpaca
    with pytest.raises(OrderNotFound):
        broker.cancel_order(str(uuid.uuid4()))


def test_filled_order_from_alpaca_docs(broker, fake_alpaca):
    documented = load_fixture("order_filled_fractional.json")
    fake_alpaca.put_order(documented)
    order = broker.get_order(documented["id"])
    assert order.status == "filled" and not order.is_open
    assert order.qty == order.filled_qty == Decimal("0.1")
    assert order.filled_avg_price == Decimal("154.03")
    assert order.filled_at == datetime(2024, 5, 20, 13, 30, 0, 865454, tzinfo=UTC)
    assert order.order_class == "simple"


def test_list_orders_sends_one_page_query(broker, fake_alpaca):
    placed = [broker.submit_order(order_request()) for _ in range(3)]
    broker.cancel_order(placed[0].id)
    orders = broker.list_orders(status="open", limit=2, direction="desc", symbols=["AAPL"])
    assert [o.id for o in orders] == [placed[2].id, placed[1].id]
    query = fake_alpaca.requests_to("GET", "/v2/orders")[-1].query
    assert query == {
        "status": "open",
        "limit": "2",
        "direction": "desc",
        "nested": "True",
        "symbols": "AAPL",
    }
    assert [o.id for o in broker.list_orders(status="closed")] == [placed[0].id]
    assert len(broker.list_orders()) == 3  # all, oldest first
    with pytest.raises(OrderRejected):
        broker.list_orders(status="filled")  # Alpaca filters by open/closed/all only


def test_list_orders_parses_alpaca_documented_orders(broker, fake_alpaca):
    for documented in load_fixture("orders_list_docs_examples.json"):
        fake_alpaca.put_order(documented)
    orders = {o.id: o for o in broker.list_orders(status="all")}
    option = orders["30a077fa-96f6-4f20-a052-4b921ee2f243"]
    assert (option.asset_class, option.status) == ("us_option", "pending_new")
    mleg = orders["83f37e9f-6b1f-49ed-8fc6-3e6af716323f"]
    assert (mleg.order_class, mleg.symbol, mleg.side) == ("mleg", "", "")
    assert [leg.filled_avg_price for leg in mleg.legs] == [Decimal("0.43"), Decimal("0.01")]


def test_cancel_then_cancel_again_is_not_cancelable(broker, fake_alpaca):
    order = broker.submit_order(order_request(type="limit", limit_price=Decimal("150")))
    broker.cancel_order(order.id)
    assert broker.get_order(order.id).status == "canceled"
    with pytest.raises(NotCancelable) as info:
        broker.cancel_order(order.id)
    assert (info.value.http_status, info.value.code) == (422, 42210000)


def test_cancel_of_a_filled_order_is_not_cancelable(broker, fake_alpaca):
    order = broker.submit_order(order_request())
    fake_alpaca.fill(order.id, "150.25")
    with pytest.raises(NotCancelable) as info:
        broker.cancel_order(order.id)
    assert "filled" in info.value.message
    with pytest.raises(NotCancelable):
        broker.replace_order(order.id, ReplaceRequest(qty=Decimal("1")))


def test_replace_returns_the_new_order_and_retires_the_old(broker, fake_alpaca):
    old = broker.submit_order(order_request(type="limit", limit_price=Decimal("150")))
    new = broker.replace_order(
        old.id,
        ReplaceRequest(
            qty=Decimal("5"),
            limit_price=Decimal("151.5"),
            time_in_force="gtc",
            client_order_id="td-replacement",
        ),
    )
    assert fake_alpaca.requests_to("PATCH", f"/v2/orders/{old.id}")[-1].body == {
        "qty": 5,
        "limit_price": 151.5,
        "time_in_force": "gtc",
        "client_order_id": "td-replacement",
    }
    assert new.id != old.id and new.replaces == old.id
    assert (new.qty, new.limit_price, new.time_in_force) == (Decimal("5"), Decimal("151.5"), "gtc")
    assert new.client_order_id == "td-replacement"
    retired = broker.get_order(old.id)
    assert (retired.status, retired.replaced_by) == ("replaced", new.id)
    assert retired.replaced_at is not None


def test_replace_trailing_stop_trail(broker, fake_alpaca):
    old = broker.submit_order(
        order_request(type="trailing_stop", side="sell", trail_percent=Decimal("2"))
    )
    new = broker.replace_order(old.id, ReplaceRequest(trail=Decimal("3.5")))
    assert fake_alpaca.requests_to("PATCH", f"/v2/orders/{old.id}")[-1].body == {"trail": 3.5}
    assert new.trail_percent == Decimal("3.5")


def test_replace_needs_a_whole_qty(broker, fake_alpaca):
    order = broker.submit_order(order_request(type="limit", limit_price=Decimal("150")))
    with pytest.raises(OrderRejected, match="whole qty"):
        broker.replace_order(order.id, ReplaceRequest(qty=Decimal("1.5")))
    assert fake_alpaca.requests_to("PATCH", f"/v2/orders/{order.id}") == []


def test_latest_quotes_and_trades(broker, fake_alpaca):
    quotes = broker.get_latest_quotes(["AAPL", "TSLA", "AAPL"])
    assert set(quotes) == {"AAPL", "TSLA"}
    apple = quotes["AAPL"]
    assert (apple.bid_price, apple.ask_price, apple.bid_size) == (
        Decimal("172.62"),
        Decimal("172.7"),
        Decimal("2"),
    )
    assert apple.mid == Decimal("172.66")
    assert apple.timestamp == datetime(2022, 8, 17, 10, 7, 40, 286587, tzinfo=UTC)
    query = fake_alpaca.requests_to("GET", "/v2/stocks/quotes/latest")[-1].query
    assert query == {"symbols": "AAPL,TSLA", "feed": "iex"}
    trade = broker.get_latest_trades(["AAPL"])["AAPL"]
    assert (trade.price, trade.size) == (Decimal("172.78"), Decimal("100"))
    assert broker.get_latest_quotes([]) == {}


def test_bars_follow_next_page_token(broker, fake_alpaca):
    template = load_fixture("stock_bars.json")["bars"]["AAPL"][0]
    fake_alpaca.bars["AAPL"] = [
        {**template, "t": f"2022-01-03T09:0{minute}:00Z", "c": 178 + minute / 100}
        for minute in range(5)
    ]
    bars = broker.get_bars(
        "AAPL", "1Min", datetime(2022, 1, 3, tzinfo=UTC), datetime(2022, 1, 4, tzinfo=UTC)
    )
    assert [b.close for b in bars] == [
        Decimal(f"178.0{m}") if m else Decimal("178") for m in range(5)
    ]
    assert bars[0].timestamp == datetime(2022, 1, 3, 9, 0, tzinfo=UTC)
    assert (bars[0].open, bars[0].volume) == (Decimal("178.26"), Decimal("1118"))
    requests = fake_alpaca.requests_to("GET", "/v2/stocks/bars")
    assert len(requests) == 3  # five bars, two per page
    assert requests[0].query["timeframe"] == "1Min" and requests[0].query["feed"] == "iex"
    assert "page_token" in requests[1].query
    with pytest.raises(OrderRejected):
        broker.get_bars("AAPL", "7Min", datetime(2022, 1, 3, tzinfo=UTC))
