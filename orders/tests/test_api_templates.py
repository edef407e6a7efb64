"""/api/v1/order-templates/: own templates only (another's is a 404), junk is a 400 that
changes nothing, and placing from one answers exactly as POST /api/v1/orders/ does."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from accounts.selectors import default_broker_account
from conftest import client_for
from orders.models import Order, OrderTemplate, TradingHalt
from orders.tests.test_api_throttle_and_schema import schema_generation_problems

pytestmark = pytest.mark.django_db

URL = "/api/v1/order-templates/"
LIMIT_BUY = {
    "name": "Cheap Apple",
    "symbol": "aapl",
    "side": "buy",
    "type": "limit",
    "qty": "2",
    "limit_price": "1.5",
    "time_in_force": "gtc",
}


@pytest.fixture
def saved(api):
    response = api.post(URL, LIMIT_BUY, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_create_get_list_update_delete(api, saved):
    assert saved["name"] == "Cheap Apple" and saved["symbol"] == "AAPL"
    assert (saved["qty"], saved["limit_price"], saved["broker_account"]) == (
        "2.000000000",
        "1.500000000",
        None,
    )
    assert saved["take_profit"] is None and saved["order_class"] == "simple"
    one = f"{URL}{saved['id']}/"
    assert api.get(one).json() == saved

    patched = api.patch(one, {"name": "Cheaper", "limit_price": "1.25"}, format="json")
    assert patched.status_code == 200, patched.content
    assert (patched.json()["name"], patched.json()["limit_price"], patched.json()["qty"]) == (
        "Cheaper",
        "1.250000000",
        "2.000000000",
    )

    body = {"name": "Whole", "symbol": "MSFT", "side": "sell", "type": "market", "qty": "1"}
    put = api.put(one, body, format="json")
    assert put.status_code == 200, put.content
    assert (put.json()["symbol"], put.json()["limit_price"], put.json()["time_in_force"]) == (
        "MSFT",
        None,
        "day",
    )

    assert api.delete(one).status_code == 204
    assert api.get(one).status_code == 404
    assert not OrderTemplate.objects.exists()


def test_the_list_is_own_only_by_name_and_paginated(api, other_api):
    for name in ("b", "a", "c"):
        assert api.post(URL, LIMIT_BUY | {"name": name}, format="json").status_code == 201
    assert other_api.post(URL, LIMIT_BUY | {"name": "theirs"}, format="json").status_code == 201

    first = api.get(URL, {"page_size": 2}).json()
    rest = api.get(first["next"]).json()

    assert [t["name"] for t in first["results"]] == ["a", "b"]
    assert [t["name"] for t in rest["results"]] == ["c"] and rest["next"] is None


def test_a_template_with_its_legs_and_account(api, trader):
    account = default_broker_account(trader)
    body = LIMIT_BUY | {
        "order_class": "bracket",
        "broker_account": account.pk,
        "take_profit": {"limit_price": "400"},
        "stop_loss": {"stop_price": "1", "limit_price": "0.9"},
    }
    saved = api.post(URL, body, format="json").json()

    assert saved["broker_account"] == account.pk
    assert saved["take_profit"] == {"limit_price": "400.000000000", "stop_price": None}
    assert saved["stop_loss"] == {"limit_price": "0.900000000", "stop_price": "1.000000000"}


def test_another_users_template_is_404_to_every_method(api, other_api, saved):
    one = f"{URL}{saved['id']}/"
    answers = [
        other_api.get(one),
        other_api.patch(one, {"qty": "5"}, format="json"),
        other_api.put(one, LIMIT_BUY | {"qty": "5"}, format="json"),
        other_api.delete(one),
        other_api.post(f"{one}place/", {}, format="json"),
    ]

    assert [a.status_code for a in answers] == [404] * 5
    assert api.get(one).json() == saved
    assert not Order.objects.exists()
    assert other_api.get(URL).json()["results"] == []


def test_strangers_are_401(client, saved):
    assert client.get(URL).status_code == 401
    assert client.post(f"{URL}{saved['id']}/place/").status_code == 401


JUNK = {
    "name missing": {k: v for k, v in LIMIT_BUY.items() if k != "name"},
    "name blank": LIMIT_BUY | {"name": "   "},
    "name too long": LIMIT_BUY | {"name": "x" * 81},
    "name null byte": LIMIT_BUY | {"name": "a\u0000b"},
    "name as list": LIMIT_BUY | {"name": ["a"]},
    "name already used, other case": LIMIT_BUY | {"name": "CHEAP apple "},
    "symbol missing": {k: v for k, v in LIMIT_BUY.items() if k != "symbol"},
    "symbol huge": LIMIT_BUY | {"symbol": "A" * 10_000},
    "symbol sql": LIMIT_BUY | {"symbol": "A'; DROP TABLE x;--"},
    "symbol cyrillic": LIMIT_BUY | {"symbol": "АAPL"},
    "symbol null byte": LIMIT_BUY | {"symbol": "AA\u0000PL"},
    "side unknown": LIMIT_BUY | {"side": "hold"},
    "type unknown": LIMIT_BUY | {"type": "moon"},
    "time in force unknown": LIMIT_BUY | {"time_in_force": "forever"},
    "order class unknown": LIMIT_BUY | {"order_class": "mleg"},
    "qty junk": LIMIT_BUY | {"qty": "abc"},
    "qty negative": LIMIT_BUY | {"qty": "-1"},
    "qty zero": LIMIT_BUY | {"qty": "0"},
    "qty NaN": LIMIT_BUY | {"qty": "NaN"},
    "qty 30 digits": LIMIT_BUY | {"qty": "1" * 30},
    "qty as list": LIMIT_BUY | {"qty": ["1"]},
    "limit price negative": LIMIT_BUY | {"limit_price": "-1"},
    "trail percent object": LIMIT_BUY | {"trail_percent": {"v": 1}},
    "extended hours junk": LIMIT_BUY | {"extended_hours": "maybe"},
    "leg as string": LIMIT_BUY | {"take_profit": "400"},
    "leg with unknown key": LIMIT_BUY | {"take_profit": {"price": "400"}},
    "leg price negative": LIMIT_BUY | {"stop_loss": {"stop_price": "-1"}},
    "unknown field": LIMIT_BUY | {"client_order_id": "mine"},
    "another unknown field": LIMIT_BUY | {"owner": 1},
    "broker account junk": LIMIT_BUY | {"broker_account": "abc"},
    "broker account huge": LIMIT_BUY | {"broker_account": 2**70},
    "broker account unknown": LIMIT_BUY | {"broker_account": 999_999},
}


@pytest.mark.parametrize("body", JUNK.values(), ids=JUNK.keys())
def test_junk_creates_are_400_and_save_nothing(api, saved, body):
    response = api.post(URL, body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["errors"] and response.json()["warnings"] == []
    assert OrderTemplate.objects.count() == 1


@pytest.mark.parametrize(
    "raw", ["{'name':", "[]", '"x"', "null", "42"], ids=["malformed", "array", "str", "null", "num"]
)
def test_bodies_that_are_not_objects_are_400(api, raw):
    response = api.post(URL, raw, content_type="application/json")

    assert response.status_code == 400
    assert not OrderTemplate.objects.exists()


UPDATE_JUNK = {name: body for name, body in JUNK.items() if name != "name already used, other case"}
UPDATE_JUNK["name of another template"] = LIMIT_BUY | {"name": " OTHER "}


@pytest.mark.parametrize("body", UPDATE_JUNK.values(), ids=UPDATE_JUNK.keys())
def test_junk_updates_are_400_and_change_nothing(api, saved, body):
    assert api.post(URL, LIMIT_BUY | {"name": "Other"}, format="json").status_code == 201
    one = f"{URL}{saved['id']}/"
    junk = {key: value for key, value in body.items() if LIMIT_BUY.get(key) != value}
    missing = {key: None for key in ("name", "symbol") if key not in body}  # null for absent

    responses = [
        api.patch(one, junk | missing, format="json"),
        api.put(one, body, format="json"),
    ]

    assert [r.status_code for r in responses] == [400, 400], [r.content for r in responses]
    assert api.get(one).json() == saved


def test_another_users_broker_account_is_a_400_not_a_leak(api, other_trader, saved):
    theirs = default_broker_account(other_trader)
    missing = api.post(URL, LIMIT_BUY | {"name": "n", "broker_account": 999_999}, format="json")
    foreign = api.post(URL, LIMIT_BUY | {"name": "n", "broker_account": theirs.pk}, format="json")
    moved = api.patch(f"{URL}{saved['id']}/", {"broker_account": theirs.pk}, format="json")

    assert foreign.status_code == missing.status_code == moved.status_code == 400
    assert foreign.json() == missing.json()  # the same answer: nothing learned about theirs
    assert OrderTemplate.objects.get().broker_account is None


def test_saving_is_not_judged_by_the_gate(api):
    TradingHalt.objects.create(scope=TradingHalt.SCOPE_DESK, mode="halted", reason="drill")

    response = api.post(URL, LIMIT_BUY | {"qty": "1000000", "limit_price": "99999"}, format="json")

    assert response.status_code == 201
    assert not Order.objects.exists()


# --- placing: the same answers as POST /api/v1/orders/ ---------------------------------

ORDER_BODY = {k: v for k, v in LIMIT_BUY.items() if k != "name"}
_VARYING = {"id", "client_order_id", "broker_order_id", "submitted_at", "created_at", "updated_at"}


def _comparable(answer: dict) -> dict:
    order = {k: v for k, v in answer["order"].items() if k not in _VARYING | {"events"}}
    events = [(e["event"], e["status"], e["source"]) for e in answer["order"]["events"]]
    return answer | {"order": order | {"events": events}}


def test_placing_answers_as_the_orders_endpoint(api, saved):
    from_template = api.post(f"{URL}{saved['id']}/place/", {}, format="json")
    direct = api.post("/api/v1/orders/", ORDER_BODY, format="json")

    assert from_template.status_code == direct.status_code == 201, from_template.content
    assert _comparable(from_template.json()) == _comparable(direct.json())
    assert from_template.json()["warnings"]  # $1.50 is far below the market: placed, warned
    assert Order.objects.filter(status="new").count() == 2


def test_a_refusal_answers_as_the_orders_endpoint(api, saved, trader):
    TradingHalt.objects.create(scope=TradingHalt.SCOPE_USER, user=trader, mode="halted", reason="x")

    from_template = api.post(f"{URL}{saved['id']}/place/", {}, format="json")
    direct = api.post("/api/v1/orders/", ORDER_BODY, format="json")

    assert from_template.status_code == direct.status_code == 400
    assert from_template.json() == direct.json()
    assert from_template.json()["errors"][0]["code"] == "trading_halted"
    assert not Order.objects.exists()


def test_over_buying_power_is_refused_at_place_time(api):
    body = {
        "name": "all in",
        "symbol": "AAPL",
        "side": "buy",
        "type": "market",
        "notional": "500000",
    }
    saved = api.post(URL, body, format="json")
    assert saved.status_code == 201

    response = api.post(f"{URL}{saved.json()['id']}/place/", {}, format="json")

    assert response.status_code == 400
    assert [e["code"] for e in response.json()["errors"]] == ["insufficient_buying_power"]
    assert not Order.objects.exists()


def test_overrides_and_the_client_order_id_repeat(api, saved):
    place = f"{URL}{saved['id']}/place/"
    first = api.post(place, {"qty": "1", "client_order_id": "tpl-1"}, format="json")
    repeat = api.post(place, {"qty": "1", "client_order_id": "tpl-1"}, format="json")
    conflict = api.post(place, {"qty": "3", "client_order_id": "tpl-1"}, format="json")

    assert (first.status_code, repeat.status_code, conflict.status_code) == (201, 200, 409)
    assert first.json()["order"]["qty"] == "1.000000000"
    assert repeat.json()["order"]["id"] == first.json()["order"]["id"]
    assert conflict.json()["code"] == "client_order_id_conflict"
    assert Order.objects.count() == 1


def test_an_order_over_the_approval_threshold_waits(api, saved, settings):
    settings.APPROVAL_NOTIONAL = Decimal("1")

    response = api.post(f"{URL}{saved['id']}/place/", {}, format="json")

    assert response.status_code == 201
    assert response.json()["order"]["status"] == "pending_approval"


def test_placing_counts_against_the_place_rate(api, saved, settings):
    settings.ORDER_COMMAND_RATES = settings.ORDER_COMMAND_RATES | {"place": "1/min"}
    place = f"{URL}{saved['id']}/place/"

    assert api.post(place, {}, format="json").status_code == 201
    limited = api.post(place, {}, format="json")
    direct = api.post("/api/v1/orders/", ORDER_BODY, format="json")

    assert limited.status_code == direct.status_code == 429
    assert limited.json()["code"] == "rate_limited" and int(limited.headers["Retry-After"]) > 0
    assert Order.objects.count() == 1


PLACE_JUNK = {
    "qty junk": {"qty": "abc"},
    "qty negative": {"qty": "-1"},
    "qty NaN": {"qty": "NaN"},
    "qty as object": {"qty": {"v": 1}},
    "unknown field": {"side": "sell"},
    "client order id too long": {"client_order_id": "x" * 129},
    "client order id as list": {"client_order_id": ["a"]},
    "qty and notional": {"qty": "1", "notional": "10"},
}


@pytest.mark.parametrize("body", PLACE_JUNK.values(), ids=PLACE_JUNK.keys())
def test_junk_placements_are_400_and_place_nothing(api, saved, body):
    response = api.post(f"{URL}{saved['id']}/place/", body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["errors"]
    assert not Order.objects.exists()


@pytest.mark.parametrize("raw", ["{'qty':", "[]", "null"])
def test_placing_with_a_body_that_is_not_an_object_is_400(api, saved, raw):
    response = api.post(f"{URL}{saved['id']}/place/", raw, content_type="application/json")

    assert response.status_code == 400
    assert not Order.objects.exists()


def test_junk_ids_are_404(api):
    for path in (f"{URL}abc/", f"{URL}{2**70}/", f"{URL}0/"):
        assert api.get(path).status_code == 404
    assert api.post(f"{URL}{2**70}/place/", {}, format="json").status_code == 404


def test_the_schema_describes_the_template_endpoints(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    assert set(paths[URL]) >= {"get", "post"}
    assert set(paths[f"{URL}{{template_id}}/"]) >= {"get", "put", "patch", "delete"}
    place = paths[f"{URL}{{template_id}}/place/"]["post"]
    assert set(place["responses"]) == set(schema["paths"]["/api/v1/orders/"]["post"]["responses"])
    assert schema_generation_problems("emplate", "Enum") == []


def test_a_body_posted_as_a_form_is_parsed_the_same(trader, saved):
    client = client_for(trader)
    response = client.post(URL, LIMIT_BUY | {"name": "form"})  # multipart
    assert response.status_code == 201
    assert json.loads(response.content)["symbol"] == "AAPL"
