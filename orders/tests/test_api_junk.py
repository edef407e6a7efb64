"""An attacker's table: every junk body is a 4xx, never a 500, and creates nothing."""

from __future__ import annotations

import json

import pytest

from orders.models import Order, OrderEvent
from tradedesk.broker.sim.models import SimOrder

pytestmark = pytest.mark.django_db

VALID = {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"}


def body(**changes) -> str:
    return json.dumps(VALID | changes)


RAW_BODIES = {
    "malformed json": "{'symbol': 'AAPL',",
    "truncated json": '{"symbol": "AAPL", "qty": ',
    "empty body": "",
    "json array": json.dumps([VALID]),
    "json string": json.dumps("buy AAPL"),
    "json number": "42",
    "json null": "null",
    "bare NaN": body().replace('"1"', "NaN"),
    "bare Infinity": body().replace('"1"', "Infinity"),
    "1e400": body().replace('"1"', "1e400"),
    "-1e400": body().replace('"1"', "-1e400"),
    "string NaN": body(qty="NaN"),
    "string Infinity": body(qty="Infinity"),
    "string -Infinity": body(notional="-Infinity", qty=None),
    "negative qty": body(qty="-5"),
    "zero qty": body(qty="0"),
    "negative notional": body(qty=None, notional="-100"),
    "30 digit qty": body(qty="1" * 30),
    "30 decimal places": body(qty="0." + "1" * 30),
    "huge exponent string": body(qty="1e999999"),
    "qty as boolean": body(qty=True),
    "qty as list": body(qty=["1"]),
    "qty as object": body(qty={"value": 1}),
    "qty and notional": body(notional="100"),
    "neither qty nor notional": body(qty=None),
    "negative limit price": body(type="limit", limit_price="-1"),
    "limit price NaN": body(type="limit", limit_price="nan"),
    "symbol missing": json.dumps({k: v for k, v in VALID.items() if k != "symbol"}),
    "symbol empty": body(symbol=""),
    "symbol null byte": body(symbol="AA\u0000PL"),
    "symbol emoji": body(symbol="📈"),
    "symbol right-to-left override": body(symbol="\u202eLPAA"),
    "symbol cyrillic lookalike": body(symbol="АAPL"),
    "symbol fullwidth": body(symbol="ＡＡＰＬ"),
    "symbol sql": body(symbol="A'; DROP TABLE orders_order;--"),
    "symbol too long": body(symbol="A" * 17),
    "symbol as number": body(symbol=123),
    "symbol as list": body(symbol=["AAPL"]),
    "unknown symbol": body(symbol="ZZZZ"),
    "side junk": body(side="hold"),
    "side null": body(side=None),
    "type junk": body(type="moon"),
    "time in force junk": body(time_in_force="forever"),
    "extended hours junk": body(extended_hours="maybe"),
    "extra unknown field": body(admin=True),
    "extra user field": body(user=2),
    "oversize client_order_id": body(client_order_id="x" * 129),
    "client_order_id as object": body(client_order_id={"a": 1}),
    "take_profit string": body(order_class="bracket", take_profit="lots"),
    "take_profit list": body(order_class="bracket", take_profit=[1, 2]),
    "take_profit nested junk": body(order_class="bracket", take_profit={"limit_price": {"x": [1]}}),
    "take_profit unknown key": body(order_class="bracket", take_profit={"price": "1"}),
    "stop_loss NaN": body(order_class="bracket", stop_loss={"stop_price": "NaN"}),
    "broker_account junk": body(broker_account="mine"),
    "broker_account huge": body(broker_account=10**30),
    "broker_account negative": body(broker_account=-1),
    "broker_account not mine": body(broker_account=999_999),
    "deeply nested": "[" * 5000 + "]" * 5000,
}


@pytest.mark.parametrize("raw", RAW_BODIES.values(), ids=RAW_BODIES.keys())
@pytest.mark.parametrize("path", ["/api/v1/orders/", "/api/v1/orders/validate/"])
def test_junk_is_a_4xx_and_creates_nothing(api, path, raw):
    response = api.generic("POST", path, raw, content_type="application/json")

    if path.endswith("/validate/") and response.status_code == 200:
        # Judging a well-formed body is the validate endpoint's job: a verdict, not an error.
        assert response.json()["valid"] is False, response.content
    else:
        assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json"
    assert not Order.objects.exists()
    assert not OrderEvent.objects.exists()
    assert not SimOrder.objects.exists()


def test_a_body_of_another_content_type_is_415(api):
    response = api.generic("POST", "/api/v1/orders/", "symbol=AAPL", content_type="text/plain")
    assert response.status_code == 415
    assert not Order.objects.exists()


def test_errors_name_the_field_and_code(api):
    response = api.post("/api/v1/orders/", VALID | {"qty": "NaN", "admin": True}, format="json")

    assert response.status_code == 400
    errors = {(e["field"], e["code"]) for e in response.json()["errors"]}
    assert ("qty", "invalid") in errors


def test_unknown_fields_are_named(api):
    response = api.post("/api/v1/orders/", VALID | {"quantity": "1"}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"code": "unknown_field", "field": "quantity", "message": "Unknown field."}
    ]


def test_nested_errors_name_the_leg(api):
    bad_leg = {"limit_price": "abc"}
    response = api.post("/api/v1/orders/", VALID | {"take_profit": bad_leg}, format="json")

    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["take_profit.limit_price"]
