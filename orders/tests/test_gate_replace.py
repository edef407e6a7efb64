"""Replace passes the same gate as a new order, from the API and the order page.

Every refusal leaves the old order as it was: no new row, no event, no broker call.
(The admin has no door that places or replaces orders: its order actions only cancel and
sync, which the last test pins.)
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.selectors import default_broker_account
from conftest import place_resting_buy
from orders import services
from orders.models import Order, OrderEvent, TradingHalt
from orders.validation import OrderInput
from tradedesk.broker import types
from tradedesk.broker.errors import OrderRejected
from tradedesk.broker.sim import market
from tradedesk.broker.sim.exchange import SimBroker

from .validation_support import desk_order

pytestmark = pytest.mark.django_db

D = Decimal


def ask(symbol: str = "AAPL") -> Decimal:
    return market.quote(symbol, timezone.now()).ask_price


def place(user, **fields) -> Order:
    values = {"symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day"}
    values |= fields
    return services.place_order(
        user=user, broker_account=default_broker_account(user), order_input=OrderInput(**values)
    ).order


@pytest.fixture
def replace_calls(monkeypatch):
    """The paper exchange's replace, counted."""
    calls = []
    real = SimBroker.replace_order

    def counted(self, order_id, request):
        calls.append(order_id)
        return real(self, order_id, request)

    monkeypatch.setattr(SimBroker, "replace_order", counted)
    return calls


def snapshot(order: Order) -> tuple:
    order.refresh_from_db()
    return (order.status, order.qty, order.limit_price, order.stop_price, order.time_in_force)


class Untouched:
    """What a refused replace must leave as it was: the row, the table, the events, the broker."""

    def __init__(self, order: Order, replace_calls: list):
        self.order = order
        self.before = snapshot(order)
        self.rows = Order.objects.count()
        self.events = OrderEvent.objects.count()
        self.replace_calls = replace_calls
        self.at_broker = SimBroker(order.broker_account.key_id).get_order(order.broker_order_id)

    def check(self) -> None:
        assert snapshot(self.order) == self.before
        assert Order.objects.count() == self.rows
        assert OrderEvent.objects.count() == self.events
        assert self.replace_calls == []
        broker = SimBroker(self.order.broker_account.key_id)
        now = broker.get_order(self.order.broker_order_id)
        assert (now.status, now.qty, now.limit_price) == (
            self.at_broker.status,
            self.at_broker.qty,
            self.at_broker.limit_price,
        )


def halt(trader, scope: str, mode: str) -> TradingHalt:
    target = {
        "desk": {},
        "user": {"user": trader},
        "broker_account": {"broker_account": default_broker_account(trader)},
    }[scope]
    return TradingHalt.objects.create(scope=scope, mode=mode, reason="risk review", **target)


# --- the cases: (id, setup(trader, settings) or None, body() of the PATCH, code) -----------
def _open_sell_at_500(trader, settings):
    # A resting sell at $500 (above the market): the buy's limit raised to it could trade
    # against it.
    place(trader, qty=D("20"))  # shares to sell
    place(trader, side="sell", type="limit", limit_price=D("500"), qty=D("5"), time_in_force="gtc")


def _halt(scope: str, mode: str):
    return lambda trader, settings: halt(trader, scope, mode)


def _big_positions(trader, settings):
    settings.MAX_POSITION_SIZE = D("1000000000000")


def _at_ask(qty: str, times: str = "1"):
    return lambda: {"qty": qty, "limit_price": str((ask() * D(times)).quantize(D("0.01")))}


CASES = [
    # The issue's reproduction: 1 share at $1 replaced by 100,000 at the ask + 5%.
    (
        "buying power (the issue's 100,000 shares)",
        _big_positions,
        _at_ask("100000", "1.05"),
        "insufficient_buying_power",
    ),
    ("position size", None, _at_ask("5000"), "max_position_size"),
    ("quantity above MAX_ORDER_QUANTITY", None, lambda: {"qty": "100001"}, "max_order_quantity"),
    ("quantity zero", None, lambda: {"qty": "0"}, "not_positive"),
    ("sub-penny limit", None, lambda: {"limit_price": "1.001"}, "sub_penny"),
    (
        "a $99,999,999,999,999 limit",
        None,
        lambda: {"limit_price": "99999999999999"},
        "max_position_size",
    ),
    ("a stop price on a limit order", None, lambda: {"stop_price": "5"}, "not_applicable"),
    ("an unknown time in force", None, lambda: {"time_in_force": "forever"}, "invalid_choice"),
    *(
        (f"{mode} at {scope} scope", _halt(scope, mode), lambda: {"qty": "300"}, code)
        for scope in ("desk", "user", "broker_account")
        for mode, code in (("halted", "trading_halted"), ("reducing", "reducing_only"))
    ),
    ("wash trade", _open_sell_at_500, lambda: {"limit_price": "500"}, "wash_trade"),
]
CASE_IDS = [case[0] for case in CASES]


def _prepare(case, trader, settings):
    """The resting order (1 share at $1), the case's setting-up, its PATCH body and code."""
    _, setup, body, code = case
    order = place_resting_buy(trader)
    if setup is not None:
        setup(trader, settings)
    return order, body(), code


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_a_replace_the_gate_refuses_is_400_and_changes_nothing(
    case, api, trader, settings, replace_calls
):
    order, body, code = _prepare(case, trader, settings)
    untouched = Untouched(order, replace_calls)

    response = api.patch(f"/api/v1/orders/{order.pk}/", body, format="json")

    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert [error["code"] for error in errors] == [code]
    assert errors[0]["message"]
    assert "warnings" in response.json()
    untouched.check()


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_the_order_page_refuses_the_same_replaces_with_a_form_error(
    case, client, trader, settings, replace_calls
):
    client.force_login(trader)
    order, body, code = _prepare(case, trader, settings)
    untouched = Untouched(order, replace_calls)

    response = client.post(f"/orders/{order.pk}/replace/", body)

    assert response.status_code == 400
    assert [error["code"] for error in response.context["replace_errors"]] == [code]
    page = response.content.decode()
    assert f'data-code="{code}"' in page
    untouched.check()


def test_the_issues_replace_is_refused_as_the_same_order_placed_directly(api, trader):
    order = place_resting_buy(trader)
    limit = str((ask() * D("1.05")).quantize(D("0.01")))
    body = {"qty": "100000", "limit_price": limit}

    replaced = api.patch(f"/api/v1/orders/{order.pk}/", body, format="json")
    placed = api.post(
        "/api/v1/orders/",
        {"symbol": "AAPL", "side": "buy", "type": "limit", "time_in_force": "gtc", **body},
        format="json",
    )

    assert replaced.status_code == placed.status_code == 400
    codes = [[e["code"] for e in r.json()["errors"]] for r in (replaced, placed)]
    assert codes == [["max_position_size"], ["max_position_size"]]


def test_buying_power_counts_only_the_increase(api, trader, settings):
    settings.MAX_POSITION_SIZE = D("1000000000000")
    # $120,000 held back of the $200,000 buying power (2x margin on $100,000).
    order = place_resting_buy(trader, limit="100")
    big = api.patch(f"/api/v1/orders/{order.pk}/", {"qty": "1200"}, format="json")
    assert big.status_code == 200, big.content
    held = Order.objects.get(pk=big.json()["id"])

    # 1,400 shares needs $140,000: the $120,000 the old order holds is released first.
    more = api.patch(f"/api/v1/orders/{held.pk}/", {"qty": "1400"}, format="json")
    assert more.status_code == 200, more.content
    too_much = api.patch(f"/api/v1/orders/{more.json()['id']}/", {"qty": "2100"}, format="json")
    assert too_much.status_code == 400
    assert [e["code"] for e in too_much.json()["errors"]] == ["insufficient_buying_power"]
    assert Order.objects.get(pk=more.json()["id"]).status == "new"


def test_reducing_lets_a_reducing_order_be_replaced_without_counting_itself(api, trader):
    place(trader, qty=D("10"))
    sell = place(
        trader, side="sell", type="limit", limit_price=D("900"), qty=D("10"), time_in_force="gtc"
    )
    halt(trader, "user", "reducing")

    # All 10 shares are already in this sell: it is not "pending" against its own replace.
    kept = api.patch(f"/api/v1/orders/{sell.pk}/", {"limit_price": "950"}, format="json")
    assert kept.status_code == 200, kept.content
    grown = api.patch(f"/api/v1/orders/{kept.json()['id']}/", {"qty": "11"}, format="json")
    assert grown.status_code == 400
    assert [e["code"] for e in grown.json()["errors"]] == ["reducing_only"]
    # A new sell on top is refused: the replacement's 10 shares count.
    with pytest.raises(services.OrderInvalid) as refused:
        place(
            trader, side="sell", type="limit", limit_price=D("900"), qty=D("1"), time_in_force="gtc"
        )
    assert refused.value.verdict.errors[0].code == "reducing_only"


def test_a_halt_refuses_even_a_replace_that_shrinks(api, trader):
    order = place_resting_buy(trader)
    halt(trader, "desk", "halted")
    response = api.patch(f"/api/v1/orders/{order.pk}/", {"limit_price": "0.5"}, format="json")
    assert response.status_code == 400
    assert [e["code"] for e in response.json()["errors"]] == ["trading_halted"]
    # Cancels never meet the gate: a halted desk can always get out.
    assert api.delete(f"/api/v1/orders/{order.pk}/").status_code == 200


def test_the_api_confirms_a_replaces_warnings_by_sending_it(api, trader):
    order = place_resting_buy(trader)  # a $1 limit: far below the market
    response = api.patch(f"/api/v1/orders/{order.pk}/", {"qty": "2"}, format="json")
    assert response.status_code == 200, response.content
    assert [w["code"] for w in response.json()["warnings"]] == ["price_far_from_market"]
    assert D(response.json()["qty"]) == 2


def test_the_page_asks_to_confirm_a_replaces_warnings_and_the_click_is_the_consent(
    client, trader, replace_calls
):
    client.force_login(trader)
    order = place_resting_buy(trader)
    untouched = Untouched(order, replace_calls)

    asked = client.post(f"/orders/{order.pk}/replace/", {"qty": "2"})

    assert asked.status_code == 200
    assert asked.context["replace_needs_confirmation"] is True
    assert [w["code"] for w in asked.context["replace_warnings"]] == ["price_far_from_market"]
    page = asked.content.decode()
    assert 'name="confirm_warnings" value="1">Replace order anyway' in page
    assert "was not sent" in page
    assert 'value="2"' in page  # the trader's change is kept in the form
    untouched.check()

    confirmed = client.post(f"/orders/{order.pk}/replace/", {"qty": "2", "confirm_warnings": "1"})
    assert confirmed.status_code == 302
    new = Order.objects.get(replaces=order.broker_order_id)
    assert confirmed["Location"] == f"/orders/{new.pk}/"
    assert (new.qty, new.status) == (D("2"), "new")


def test_the_page_answers_an_unconfirmed_or_closed_order_with_a_message_not_a_500(
    client, trader, replace_calls
):
    client.force_login(trader)
    unconfirmed = place_resting_buy(trader)
    Order.objects.filter(pk=unconfirmed.pk).update(broker_order_id="", status="pending_new")
    Order.objects.filter(pk=unconfirmed.pk).update(client_order_id="never-reached-the-broker")

    response = client.post(f"/orders/{unconfirmed.pk}/replace/", {"qty": "2"})
    assert response.status_code == 422
    assert [e["code"] for e in response.context["replace_errors"]] == ["order_unconfirmed"]

    # Filled (here: canceled) at the broker, still open on the desk: the broker refuses.
    stale = place_resting_buy(trader)
    SimBroker(stale.broker_account.key_id).cancel_order(stale.broker_order_id)
    response = client.post(f"/orders/{stale.pk}/replace/", {"qty": "2", "confirm_warnings": "1"})
    assert response.status_code == 422
    assert [e["code"] for e in response.context["replace_errors"]] == ["not_replaceable"]
    stale.refresh_from_db()
    assert stale.status == "canceled"  # caught up with the broker
    assert not Order.objects.filter(replaces=stale.broker_order_id).exists()


def test_a_second_replace_while_one_is_under_way_is_refused(api, trader, replace_calls):
    order = place_resting_buy(trader)
    desk_order(
        order.broker_account,
        type="limit",
        time_in_force="gtc",
        qty=D("2"),
        limit_price=D("1"),
        status="pending_new",
        replaces=order.broker_order_id,
    )

    response = api.patch(f"/api/v1/orders/{order.pk}/", {"qty": "3"}, format="json")

    assert response.status_code == 422
    assert response.json()["code"] == "replace_in_progress"
    assert replace_calls == []
    assert snapshot(order)[0] == "new"


def test_replace_is_rate_limited_on_the_api_and_the_page(api, client, trader, settings):
    settings.ORDER_COMMAND_RATES = settings.ORDER_COMMAND_RATES | {"replace": "1/min"}
    client.force_login(trader)
    order = place_resting_buy(trader)
    first = api.patch(f"/api/v1/orders/{order.pk}/", {"qty": "2"}, format="json")
    assert first.status_code == 200
    new = first.json()["id"]

    limited = api.patch(f"/api/v1/orders/{new}/", {"qty": "3"}, format="json")
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["code"] == "rate_limited"
    assert "try again in" in limited.json()["detail"]

    page = client.post(f"/orders/{new}/replace/", {"qty": "3", "confirm_warnings": "1"})
    assert page.status_code == 429
    [error] = page.context["replace_errors"]
    assert error["code"] == "rate_limited"
    assert "try again in" in error["message"]
    assert Order.objects.get(pk=new).status == "new"


def test_the_ticket_is_rate_limited_with_a_message_saying_when_to_retry(client, trader, settings):
    settings.ORDER_COMMAND_RATES = settings.ORDER_COMMAND_RATES | {"place": "2/min"}
    client.force_login(trader)
    body = {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"}

    statuses = [client.post("/orders/new/", body).status_code for _ in range(5)]

    assert statuses == [302, 302, 429, 429, 429]
    assert Order.objects.filter(user=trader).count() == 2
    limited = client.post("/orders/new/", body)
    assert "try again in" in limited.content.decode()


def test_the_admin_has_no_door_that_places_or_replaces_orders(admin_client, trader):
    order = place_resting_buy(trader)
    assert admin_client.get("/admin/orders/order/add/").status_code == 403
    # Every field is read-only: saving the change form cannot alter the order.
    admin_client.post(f"/admin/orders/order/{order.pk}/change/", {"qty": "5000"})
    assert snapshot(order)[1] == D("1")


# --- the paper exchange re-checks buying power on replace ---------------------------------
def test_the_paper_exchange_refuses_a_replace_over_buying_power(trader):
    order = place_resting_buy(trader)
    broker = SimBroker(order.broker_account.key_id)
    price = (ask() * D("1.05")).quantize(D("0.01"))

    with pytest.raises(OrderRejected) as refused:
        broker.replace_order(
            order.broker_order_id, types.ReplaceRequest(qty=D("100000"), limit_price=price)
        )

    assert refused.value.http_status == 403
    assert refused.value.message == "insufficient buying power"
    at_broker = broker.get_order(order.broker_order_id)
    assert (at_broker.status, at_broker.qty) == ("new", D("1"))
    assert broker.get_account().cash == D("100000")


def test_the_paper_exchange_releases_the_old_orders_hold_on_replace(trader):
    broker = SimBroker(default_broker_account(trader).key_id)
    order = place_resting_buy(trader, limit="100")
    broker.replace_order(order.broker_order_id, types.ReplaceRequest(qty=D("1500")))  # $150k
    [open_order] = broker.list_orders(status="open")
    # $190k of $200k: fits only because the $150k already held is released.
    replaced = broker.replace_order(open_order.id, types.ReplaceRequest(qty=D("1900")))
    assert replaced.qty == D("1900")
    with pytest.raises(OrderRejected):
        broker.replace_order(replaced.id, types.ReplaceRequest(qty=D("2100")))


@pytest.mark.parametrize("body", [{"qty": "abc"}, {"limit_price": "NaN"}, {"qty": "1e400"}, {}])
def test_the_order_page_refuses_junk_as_a_form_error(client, trader, replace_calls, body):
    client.force_login(trader)
    order = place_resting_buy(trader)
    untouched = Untouched(order, replace_calls)

    response = client.post(f"/orders/{order.pk}/replace/", body)

    assert response.status_code == 400
    assert response.context["replace_errors"]
    untouched.check()
