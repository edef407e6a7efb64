"""The Alpaca REST over the desk (Django's client; alpaca-py itself runs in test_alpaca_py)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from orders.models import Order, TradingHalt

pytestmark = pytest.mark.django_db

LIMIT_BUY = {
    "symbol": "AAPL",
    "qty": 1,
    "side": "buy",
    "type": "limit",
    "time_in_force": "gtc",
    "limit_price": 1.0,
}


def test_account_clock_calendar_assets(bot):
    account = bot.get("/v2/account")
    assert account.status_code == 200, account.content
    body = account.json()
    assert body["status"] == "ACTIVE" and Decimal(body["cash"]) == Decimal("100000")
    assert "daytrade_count" not in body and isinstance(body["buying_power"], str)
    clock = bot.get("/v2/clock").json()
    assert set(clock) == {"timestamp", "is_open", "next_open", "next_close"}
    days = bot.get("/v2/calendar", start="2026-12-21", end="2026-12-28").json()
    # Christmas is a holiday; Dec 24 closes early.
    assert [d["date"] for d in days] == [
        "2026-12-21",
        "2026-12-22",
        "2026-12-23",
        "2026-12-24",
        "2026-12-28",
    ]
    assert days[3]["close"] == "13:00" and days[0] == {
        "date": "2026-12-21", "open": "09:30", "close": "16:00",
        "session_open": "0400", "session_close": "2000",
    }  # fmt: skip
    listed = bot.get("/v2/assets").json()
    assert any(a["symbol"] == "AAPL" for a in listed)
    aapl = bot.get("/v2/assets/AAPL").json()
    assert aapl["class"] == "us_equity" and aapl["tradable"] is True
    assert bot.get(f"/v2/assets/{aapl['id']}").json()["symbol"] == "AAPL"
    missing = bot.get("/v2/assets/NOPE")
    assert missing.status_code == 404 and missing.json()["code"] == 40410000


def test_an_order_is_a_desk_order_placed_via_the_gateway(bot, trader):
    placed = bot.post("/v2/orders", LIMIT_BUY | {"client_order_id": "bot-1"})
    assert placed.status_code == 200, placed.content
    body = placed.json()
    assert body["client_order_id"] == "bot-1" and body["status"] == "new"
    assert body["qty"] == "1" and body["limit_price"] == "1" and body["order_class"] == ""
    order = Order.objects.get(client_order_id="bot-1")
    assert order.user == trader and order.placed_via == "gateway"
    assert order.broker_order_id == body["id"]
    assert [e.source for e in order.events.all()] == ["gateway", "gateway"]
    assert bot.get(f"/v2/orders/{body['id']}").json()["id"] == body["id"]
    by_client = bot.get("/v2/orders:by_client_order_id", client_order_id="bot-1")
    assert by_client.json()["id"] == body["id"]


def test_a_reused_client_order_id_is_a_422_even_after_cancel(bot):
    first = bot.post("/v2/orders", LIMIT_BUY | {"client_order_id": "again"}).json()
    assert bot.delete(f"/v2/orders/{first['id']}").status_code == 204
    assert bot.get(f"/v2/orders/{first['id']}").json()["status"] == "canceled"
    for body in (LIMIT_BUY, LIMIT_BUY | {"qty": 2}):
        repeat = bot.post("/v2/orders", body | {"client_order_id": "again"})
        assert repeat.status_code == 422 and repeat.json()["code"] == 40010001
    assert Order.objects.filter(client_order_id="again").count() == 1


@pytest.mark.parametrize(
    ("body", "status", "code", "desk_code"),
    [
        ({"qty": 900, "limit_price": 300}, 403, 40310000, "insufficient_buying_power"),
        ({"limit_price": "1.001"}, 422, 42210000, "sub_penny"),
        ({"symbol": "ZZZZ"}, 422, 42210000, "unknown_symbol"),
        ({"type": "limit", "limit_price": None}, 422, 42210000, "required"),
        ({"side": "sideways"}, 422, 42210000, "invalid_choice"),
    ],
    ids=["buying-power", "sub-penny", "unknown-asset", "missing-price", "bad-side"],
)
def test_gate_refusals_map_to_alpaca_codes(bot, body, status, code, desk_code):
    refused = bot.post("/v2/orders", {k: v for k, v in (LIMIT_BUY | body).items() if v is not None})
    assert refused.status_code == status, refused.content
    assert refused.json()["code"] == code and f"({desk_code})" in refused.json()["message"]
    assert not Order.objects.exists()


def test_a_wash_trade_is_a_422(bot):
    assert bot.post("/v2/orders", LIMIT_BUY | {"limit_price": 100}).status_code == 200
    crossing = bot.post("/v2/orders", LIMIT_BUY | {"side": "sell", "limit_price": 50})
    assert crossing.status_code == 422 and "(wash_trade)" in crossing.json()["message"]


def test_a_halt_refuses_with_403_and_reducing_still_closes(bot, trader):
    bought = bot.post(
        "/v2/orders",
        {"symbol": "AAPL", "qty": 2, "side": "buy", "type": "market", "time_in_force": "day"},
    )
    assert bought.json()["status"] == "filled", bought.content
    TradingHalt.objects.create(scope="user", user=trader, mode="reducing", reason="risk")
    more = bot.post("/v2/orders", LIMIT_BUY)
    assert more.status_code == 403 and "(reducing_only)" in more.json()["message"]
    closed = bot.delete("/v2/positions/AAPL", qty="1")
    assert closed.status_code == 200, closed.content
    assert closed.json()["side"] == "sell" and closed.json()["qty"] == "1"
    TradingHalt.objects.create(scope="user", user=trader, mode="halted", reason="stop")
    halted = bot.delete("/v2/positions/AAPL")
    assert halted.status_code == 403 and "(trading_halted)" in halted.json()["message"]


def test_list_filters_paging_and_nested(bot):
    ids = [bot.post("/v2/orders", LIMIT_BUY | {"limit_price": p}).json()["id"] for p in (1, 2, 3)]
    bot.delete(f"/v2/orders/{ids[0]}")
    assert [o["id"] for o in bot.get("/v2/orders").json()] == ids[:0:-1]
    assert [o["id"] for o in bot.get("/v2/orders", status="closed").json()] == [ids[0]]
    everything = bot.get("/v2/orders", status="all", direction="asc", limit="2").json()
    assert [o["id"] for o in everything] == ids[:2]
    after = bot.get(
        "/v2/orders", status="all", direction="asc", after=everything[1]["submitted_at"]
    )
    assert after.status_code == 200
    assert bot.get("/v2/orders", limit="501").status_code == 422
    bracket = bot.post(
        "/v2/orders",
        LIMIT_BUY | {"order_class": "bracket", "time_in_force": "gtc", "limit_price": 5,
                     "take_profit": {"limit_price": 9000}, "stop_loss": {"stop_price": 4}},
    )  # fmt: skip
    assert bracket.status_code == 200, bracket.content
    assert len(bracket.json()["legs"]) == 2
    flat = bot.get("/v2/orders", status="all").json()
    assert all(o["legs"] is None for o in flat)
    nested = bot.get("/v2/orders", status="all", nested="true").json()
    assert [len(o["legs"] or []) for o in nested if o["order_class"] == "bracket"] == [2]


def test_replace_returns_the_new_order(bot):
    old = bot.post("/v2/orders", LIMIT_BUY).json()
    new = bot.patch(f"/v2/orders/{old['id']}", {"limit_price": 2.5, "qty": 3})
    assert new.status_code == 200, new.content
    assert new.json()["replaces"] == old["id"] and new.json()["limit_price"] == "2.5"
    assert bot.get(f"/v2/orders/{old['id']}").json()["replaced_by"] == new.json()["id"]
    refused = bot.patch(f"/v2/orders/{new.json()['id']}", {"qty": 100000, "limit_price": 500})
    assert refused.status_code == 403 and refused.json()["code"] == 40310000


def test_cancel_all_answers_207(bot):
    ids = {bot.post("/v2/orders", LIMIT_BUY | {"limit_price": p}).json()["id"] for p in (1, 2)}
    answer = bot.delete("/v2/orders")
    assert answer.status_code == 207
    assert {item["id"] for item in answer.json()} == ids
    assert all(item["status"] == 200 for item in answer.json())
    assert bot.get("/v2/orders").json() == []
    closed = bot.delete(f"/v2/orders/{ids.pop()}")
    assert closed.status_code == 422 and closed.json()["code"] == 42210000


def test_positions_and_close_all(bot):
    for symbol in ("AAPL", "MSFT"):
        body = {"symbol": symbol, "qty": 1, "side": "buy", "type": "market", "time_in_force": "day"}
        assert bot.post("/v2/orders", body).json()["status"] == "filled"
    held = bot.get("/v2/positions").json()
    assert sorted(p["symbol"] for p in held) == ["AAPL", "MSFT"]
    assert bot.get("/v2/positions/AAPL").json()["qty"] == "1"
    assert bot.get("/v2/positions/TSLA").status_code == 404
    closed = bot.delete("/v2/positions", cancel_orders="true")
    assert closed.status_code == 207
    assert sorted((i["symbol"], i["status"], i["body"]["side"]) for i in closed.json()) == [
        ("AAPL", 200, "sell"), ("MSFT", 200, "sell"),
    ]  # fmt: skip
    assert bot.get("/v2/positions").json() == []


def test_other_users_orders_are_not_found(bot, other_bot):
    theirs = other_bot.post("/v2/orders", LIMIT_BUY | {"client_order_id": "theirs"}).json()
    for method in ("get", "delete"):
        answer = getattr(bot, method)(f"/v2/orders/{theirs['id']}")
        assert answer.status_code == 404 and answer.json() == {
            "code": 40410000,
            "message": "order not found",
        }
    assert bot.patch(f"/v2/orders/{theirs['id']}", {"qty": 2}).status_code == 404
    assert bot.get("/v2/orders:by_client_order_id", client_order_id="theirs").status_code == 404
    assert other_bot.get(f"/v2/orders/{theirs['id']}").json()["status"] == "new"


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"[1, 2]",
        b'"text"',
        b"[" * 100_000,
        b'{"symbol": "AAPL", "qty": 1, "side": "buy", "type": "market", "surprise": 1}',
        b'{"symbol": "AAPL", "qty": 1e400, "side": "buy", "type": "market"}',
        b'{"symbol": "AAPL", "qty": 99999999999999999999, "side": "buy", "type": "market"}',
        b'{"symbol": "AAPL", "qty": "NaN", "side": "buy", "type": "market"}',
        b'{"symbol": ["AAPL"], "qty": 1, "side": "buy", "type": "market"}',
        b'{"symbol": "AAPL", "qty": true, "side": "buy", "type": "market"}',
        b'{"symbol": "AAPL", "qty": 1, "side": "buy", "type": "market", "take_profit": 5}',
        b'{"symbol": "AAPL", "qty": 1, "side": "buy", "type": "market", "extended_hours": "x"}',
    ],
)
def test_junk_order_bodies_are_4xx_and_change_nothing(bot, raw):
    answer = bot.post("/v2/orders", raw=raw)
    assert 400 <= answer.status_code < 500, answer.content
    assert isinstance(answer.json()["code"], int) and answer.json()["message"]
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v2/orders/not-a-uuid", {}),
        (f"/v2/orders/{uuid.uuid4()}", {}),
        ("/v2/orders", {"status": "weird"}),
        ("/v2/orders", {"limit": "-1"}),
        ("/v2/orders", {"limit": "²"}),  # a digit to str.isdigit, not to int()
        ("/v2/orders", {"limit": "9" * 5000}),
        ("/v2/orders", {"after": "0001-01-01T00:00:00+05:00"}),  # before year 1 in UTC
        ("/v2/orders", {"until": "9999-12-31T23:00:00-05:00"}),  # after year 9999 in UTC
        ("/v2/calendar", {"start": "9999-12-31"}),  # the default end is a year later
        ("/v2/orders", {"after": "yesterday"}),
        ("/v2/orders", {"direction": "sideways"}),
        ("/v2/orders:by_client_order_id", {}),
        ("/v2/calendar", {"start": "2026-13-45"}),
        ("/v2/calendar", {"start": "2026-01-01", "end": "1990-01-01"}),
        ("/v2/nothing-here", {}),
    ],
)
def test_junk_queries_are_4xx(bot, path, query):
    answer = bot.get(path, **query)
    assert 400 <= answer.status_code < 500 and "code" in answer.json()


def test_nanosecond_times_are_accepted(bot):
    bot.post("/v2/orders", LIMIT_BUY)
    answer = bot.get("/v2/orders", status="all", until="2999-01-01T00:00:00.123456789Z")
    assert answer.status_code == 200 and len(answer.json()) == 1


def test_a_canceled_brackets_legs_are_closed_in_the_desks_record(bot):
    bracket = bot.post(
        "/v2/orders",
        LIMIT_BUY
        | {
            "order_class": "bracket",
            "limit_price": 5,
            "take_profit": {"limit_price": 9000},
            "stop_loss": {"stop_price": 4},
        },
    ).json()
    assert bot.delete(f"/v2/orders/{bracket['id']}").status_code == 204
    legs = bot.get(f"/v2/orders/{bracket['id']}", nested="true").json()["legs"]
    assert [leg["status"] for leg in legs] == ["canceled", "canceled"]
    assert Order.objects.exclude(status="canceled").count() == 0


def test_every_code_mapped_to_403_is_a_gate_code():
    from gateway.errors import FORBIDDEN_GATE_CODES
    from orders.validation import CODES

    assert set(CODES) >= FORBIDDEN_GATE_CODES


def test_a_brokers_own_refusal_keeps_its_status_and_code():
    import json

    from gateway.errors import for_exception
    from orders.services import OrderInvalid
    from orders.validation import Issue, Verdict
    from tradedesk.broker.errors import OrderRejected

    refused = OrderRejected("insufficient buying power", code=40310000, http_status=403)
    try:
        raise OrderInvalid(Verdict(errors=[Issue("broker_rejected", None, "x")])) from refused
    except OrderInvalid as invalid:
        answer = for_exception(invalid)
    assert answer.status_code == 403
    assert json.loads(answer.content) == {"code": 40310000, "message": "insufficient buying power"}


def test_wrong_methods_and_missing_positions_are_alpaca_4xx(bot):
    assert bot.request("PUT", "/v2/orders", {}).status_code == 405
    assert bot.post("/v2/account", {}).status_code == 405
    missing = bot.delete("/v2/positions/TSLA")
    assert missing.status_code == 404 and missing.json()["code"] == 40410000
    for query in ({"qty": "abc"}, {"qty": "1", "percentage": "50"}, {"percentage": "250"}):
        assert bot.delete("/v2/positions/AAPL", **query).status_code == 422
    assert not Order.objects.exists()
