"""The wash-trade guard and the operator's kill switch."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from orders.models import TradingHalt

from .validation_support import codes, desk_order, make_desk, order

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def desk(trader):
    return make_desk(trader, positions={"AAPL": D("100")})


# --- wash trades --------------------------------------------------------------------
# (case, the open order's values, the new order's changes, whether it is a wash trade)
WASH_CASES = [
    (
        "buy at an open sell limit",
        {"side": "sell", "type": "limit", "limit_price": D("240")},
        {"type": "limit", "limit_price": D("240")},
        True,
    ),
    (
        "buy above an open sell limit",
        {"side": "sell", "type": "limit", "limit_price": D("240")},
        {"type": "limit", "limit_price": D("241")},
        True,
    ),
    (
        "buy below an open sell limit",
        {"side": "sell", "type": "limit", "limit_price": D("240")},
        {"type": "limit", "limit_price": D("239.99")},
        False,
    ),
    (
        "market buy against an open sell limit",
        {"side": "sell", "type": "limit", "limit_price": D("240")},
        {},
        True,
    ),
    (
        "sell at an open buy limit",
        {"side": "buy", "type": "limit", "limit_price": D("220")},
        {"side": "sell", "type": "limit", "limit_price": D("220")},
        True,
    ),
    (
        "sell below an open buy limit",
        {"side": "buy", "type": "limit", "limit_price": D("220")},
        {"side": "sell", "type": "limit", "limit_price": D("219")},
        True,
    ),
    (
        "sell above an open buy limit",
        {"side": "buy", "type": "limit", "limit_price": D("220")},
        {"side": "sell", "type": "limit", "limit_price": D("220.01")},
        False,
    ),
    (
        "market sell against an open buy limit",
        {"side": "buy", "type": "limit", "limit_price": D("220")},
        {"side": "sell"},
        True,
    ),
    (
        "limit buy against a queued market sell",
        {"side": "sell", "status": "accepted"},
        {"type": "limit", "limit_price": D("100")},
        True,
    ),
    (
        "limit buy against an open stop sell",
        {"side": "sell", "type": "stop", "stop_price": D("200")},
        {"type": "limit", "limit_price": D("100")},
        True,
    ),
    (
        "buy against a stop-limit sell's limit",
        {"side": "sell", "type": "stop_limit", "stop_price": D("200"), "limit_price": D("199")},
        {"type": "limit", "limit_price": D("199.50")},
        True,
    ),
    (
        "buy against a partly filled sell",
        {
            "side": "sell",
            "type": "limit",
            "limit_price": D("240"),
            "status": "partially_filled",
            "filled_qty": D("0.5"),
        },
        {},
        True,
    ),
    ("same side", {"side": "buy", "type": "limit", "limit_price": D("240")}, {}, False),
    ("another symbol", {"side": "sell", "symbol": "MSFT"}, {}, False),
    ("a filled sell", {"side": "sell", "status": "filled", "filled_qty": D("1")}, {}, False),
    ("a canceled sell", {"side": "sell", "status": "canceled"}, {}, False),
]


@pytest.mark.parametrize(
    ("open_order", "changes", "is_wash"), [pytest.param(*row[1:], id=row[0]) for row in WASH_CASES]
)
def test_an_order_that_could_trade_against_an_own_open_order_is_refused(
    desk, open_order, changes, is_wash
):
    desk_order(desk.account, **open_order)

    verdict = desk.validate(order(**changes))

    assert ("wash_trade" in codes(verdict.errors)) is is_wash


def test_the_wash_trade_message_names_the_open_order(desk):
    resting = desk_order(
        desk.account,
        side="sell",
        type="limit",
        limit_price=D("240"),
        qty=D("3"),
        client_order_id="take-profit-7",
    )

    verdict = desk.validate(order(type="limit", limit_price=D("241")))

    [error] = verdict.errors
    assert (error.code, error.field) == ("wash_trade", "limit_price")
    assert f"#{resting.pk}" in error.message
    assert "take-profit-7" in error.message
    assert "limit sell at $240.00" in error.message
    assert "3 shares" in error.message


def test_a_market_order_wash_trade_names_the_side(desk):
    desk_order(desk.account, side="sell", type="limit", limit_price=D("240"))

    [error] = desk.validate(order()).errors

    assert (error.code, error.field) == ("wash_trade", "side")


def test_another_accounts_open_order_is_no_wash_trade(desk, other_trader):
    desk_order(other_trader.broker_accounts.get(), side="sell", type="limit", limit_price=D("1"))

    assert desk.validate(order()).valid


# --- kill switch ----------------------------------------------------------------------
def _halt(desk, scope: str, mode: str, **values) -> TradingHalt:
    target = {
        "desk": {},
        "user": {"user": desk.user},
        "broker_account": {"broker_account": desk.account},
    }[scope]
    return TradingHalt.objects.create(
        scope=scope, mode=mode, reason="risk review", **(target | values)
    )


SCOPES = ["desk", "user", "broker_account"]


@pytest.mark.parametrize("scope", SCOPES)
def test_a_halt_refuses_every_order(desk, scope):
    _halt(desk, scope, "halted")

    for changes in ({}, {"side": "sell", "qty": D("10")}):
        verdict = desk.validate(order(**changes))
        assert [(e.code, e.field) for e in verdict.errors] == [("trading_halted", None)]
        assert "risk review" in verdict.errors[0].message


@pytest.mark.parametrize("scope", SCOPES)
def test_reducing_mode_accepts_only_orders_that_shrink_a_position(desk, scope):
    _halt(desk, scope, "reducing")

    assert desk.validate(order(side="sell", qty=D("40"))).valid
    assert desk.validate(order(side="sell", qty=D("100"))).valid
    for changes in ({"side": "sell", "qty": D("101")}, {"qty": D("1")}):
        verdict = desk.validate(order(**changes))
        assert [(e.code, e.field) for e in verdict.errors] == [("reducing_only", "qty")]
        assert "100 AAPL long" in verdict.errors[0].message
    verdict = desk.validate(order(symbol="MSFT", side="sell"))
    assert codes(verdict.errors) == ["reducing_only"]
    assert "no MSFT position" in verdict.errors[0].message


@pytest.mark.parametrize("scope", SCOPES)
def test_reducing_mode_lets_a_short_be_covered(trader, scope):
    desk = make_desk(trader, positions={"AAPL": D("-20")})
    _halt(desk, scope, "reducing")

    assert desk.validate(order(qty=D("20"))).valid
    assert codes(desk.validate(order(qty=D("21"))).errors) == ["reducing_only"]
    assert codes(desk.validate(order(side="sell")).errors) == ["reducing_only"]


def test_reducing_mode_counts_open_orders_already_reducing(desk):
    _halt(desk, "desk", "reducing")
    desk_order(desk.account, side="sell", type="limit", limit_price=D("900"), qty=D("70"))

    assert desk.validate(order(side="sell", type="limit", limit_price=D("900"), qty=D("30"))).valid
    verdict = desk.validate(order(side="sell", type="limit", limit_price=D("900"), qty=D("31")))
    assert codes(verdict.errors) == ["reducing_only"]
    assert "70 already in open sell orders" in verdict.errors[0].message


def test_halted_wins_over_reducing(desk):
    _halt(desk, "desk", "reducing")
    _halt(desk, "broker_account", "halted")

    assert codes(desk.validate(order(side="sell")).errors) == ["trading_halted"]


@pytest.mark.parametrize("scope", ["user", "broker_account"])
def test_a_halt_on_someone_else_does_not_apply(desk, other_trader, scope):
    other = make_desk(other_trader)
    _halt(other, scope, "halted")

    assert desk.validate(order()).valid
    assert codes(other.validate(order()).errors) == ["trading_halted"]


def test_a_lifted_halt_no_longer_applies(desk):
    halt = _halt(desk, "desk", "halted")
    halt.active = False
    halt.save()

    assert desk.validate(order()).valid


@pytest.mark.parametrize(
    ("scope", "targets"),
    [
        ("desk", {"user": True}),
        ("user", {}),
        ("user", {"user": True, "broker_account": True}),
        ("broker_account", {}),
        ("broker_account", {"user": True, "broker_account": True}),
    ],
)
def test_the_database_refuses_a_halt_whose_target_does_not_match_its_scope(desk, scope, targets):
    values = {
        "user": desk.user if targets.get("user") else None,
        "broker_account": desk.account if targets.get("broker_account") else None,
    }
    with pytest.raises(IntegrityError), transaction.atomic():
        TradingHalt.objects.create(scope=scope, mode="halted", reason="x", **values)


@pytest.mark.parametrize(("scope", "mode"), [("everyone", "halted"), ("desk", "paused")])
def test_the_database_refuses_an_unknown_scope_or_mode(scope, mode):
    with pytest.raises(IntegrityError), transaction.atomic():
        TradingHalt.objects.create(scope=scope, mode=mode, reason="x")


def test_operators_see_halts_in_admin(admin_client, desk):
    _halt(desk, "user", "reducing")

    response = admin_client.get("/admin/orders/tradinghalt/?active__exact=1")

    assert response.status_code == 200
    assert b"risk review" in response.content
    assert admin_client.get("/admin/orders/tradinghalt/add/").status_code == 200
