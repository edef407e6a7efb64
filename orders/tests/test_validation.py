"""validate_order: every rule, market hours, codes and the look-up cache."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from orders import validation
from orders.validation import CODES
from tradedesk.broker.types import LegRequest

from .validation_support import THANKSGIVING, TUESDAY_OPEN, codes, desk_order, make_desk, order

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def desk(trader):
    return make_desk(trader)


# (case, order changes, settings, expected error code, expected field)
INVALID = [
    ("qty and notional", {"notional": D("100")}, {}, "qty_or_notional", "qty"),
    ("neither qty nor notional", {"qty": None}, {}, "qty_or_notional", "qty"),
    ("zero qty", {"qty": D("0")}, {}, "not_positive", "qty"),
    ("negative qty", {"qty": D("-5")}, {}, "not_positive", "qty"),
    ("negative notional", {"qty": None, "notional": D("-5")}, {}, "not_positive", "notional"),
    ("NaN qty", {"qty": D("NaN")}, {}, "invalid_number", "qty"),
    (
        "infinite notional",
        {"qty": None, "notional": D("Infinity")},
        {},
        "invalid_number",
        "notional",
    ),
    ("qty over the desk limit", {"qty": D("100001")}, {}, "max_order_quantity", "qty"),
    (
        "qty over a lowered limit",
        {"qty": D("11")},
        {"MAX_ORDER_QUANTITY": D("10")},
        "max_order_quantity",
        "qty",
    ),
    ("qty with 10 decimals", {"qty": D("0.0000000001")}, {}, "too_many_decimals", "qty"),
    (
        "notional in tenths of cents",
        {"qty": None, "notional": D("10.001")},
        {},
        "too_many_decimals",
        "notional",
    ),
    ("lower-case symbol", {"symbol": "aapl"}, {}, "invalid_symbol", "symbol"),
    ("six-letter symbol", {"symbol": "ABCDEF"}, {}, "invalid_symbol", "symbol"),
    ("symbol with a newline", {"symbol": "AAPL\n"}, {}, "invalid_symbol", "symbol"),
    ("unknown symbol", {"symbol": "ZZZZ"}, {}, "unknown_symbol", "symbol"),
    ("halted asset", {"symbol": "SNDL"}, {}, "not_tradable", "symbol"),
    (
        "fractional whole-share asset",
        {"symbol": "GME", "qty": D("1.5")},
        {},
        "not_fractionable",
        "qty",
    ),
    (
        "notional whole-share asset",
        {"symbol": "SIRI", "qty": None, "notional": D("10")},
        {},
        "not_fractionable",
        "notional",
    ),
    ("bad side", {"side": "hold"}, {}, "invalid_choice", "side"),
    ("bad type", {"type": "iceberg"}, {}, "invalid_choice", "type"),
    ("limit without limit price", {"type": "limit"}, {}, "required", "limit_price"),
    ("stop without stop price", {"type": "stop"}, {}, "required", "stop_price"),
    (
        "stop limit without limit price",
        {"type": "stop_limit", "stop_price": D("200")},
        {},
        "required",
        "limit_price",
    ),
    (
        "stop limit without stop price",
        {"type": "stop_limit", "limit_price": D("200")},
        {},
        "required",
        "stop_price",
    ),
    ("trailing stop without trail", {"type": "trailing_stop"}, {}, "trail_one_of", "trail_price"),
    (
        "trailing stop with both trails",
        {"type": "trailing_stop", "trail_price": D("1"), "trail_percent": D("2")},
        {},
        "trail_one_of",
        "trail_price",
    ),
    (
        "market order with a limit price",
        {"limit_price": D("200")},
        {},
        "not_applicable",
        "limit_price",
    ),
    (
        "limit order with a trail",
        {"type": "limit", "limit_price": D("200"), "trail_percent": D("1")},
        {},
        "not_applicable",
        "trail_percent",
    ),
    (
        "negative limit price",
        {"type": "limit", "limit_price": D("-1")},
        {},
        "not_positive",
        "limit_price",
    ),
    (
        "sub-penny limit over $1",
        {"type": "limit", "limit_price": D("290.123")},
        {},
        "sub_penny",
        "limit_price",
    ),
    (
        "5 decimals under $1",
        {"type": "limit", "limit_price": D("0.12345")},
        {},
        "sub_penny",
        "limit_price",
    ),
    ("sub-penny stop", {"type": "stop", "stop_price": D("250.001")}, {}, "sub_penny", "stop_price"),
    (
        "zero trail percent",
        {"type": "trailing_stop", "trail_percent": D("0")},
        {},
        "not_positive",
        "trail_percent",
    ),
    ("bad time in force", {"time_in_force": "week"}, {}, "invalid_choice", "time_in_force"),
    (
        "notional limit order",
        {"qty": None, "notional": D("100"), "type": "limit", "limit_price": D("200")},
        {},
        "fractional_market_day",
        "type",
    ),
    (
        "fractional gtc order",
        {"qty": D("0.5"), "time_in_force": "gtc"},
        {},
        "fractional_market_day",
        "time_in_force",
    ),
    (
        "notional bracket",
        {
            "qty": None,
            "notional": D("100"),
            "order_class": "bracket",
            "take_profit": LegRequest(limit_price=D("900")),
            "stop_loss": LegRequest(stop_price=D("1")),
        },
        {},
        "fractional_market_day",
        "order_class",
    ),
    ("bad order class", {"order_class": "chain"}, {}, "invalid_choice", "order_class"),
    (
        "legs on a simple order",
        {"take_profit": LegRequest(limit_price=D("900"))},
        {},
        "legs_need_order_class",
        "take_profit",
    ),
    (
        "bracket for ioc",
        {
            "order_class": "bracket",
            "time_in_force": "ioc",
            "take_profit": LegRequest(limit_price=D("900")),
            "stop_loss": LegRequest(stop_price=D("1")),
        },
        {},
        "complex_time_in_force",
        "time_in_force",
    ),
    (
        "bracket without stop-loss",
        {"order_class": "bracket", "take_profit": LegRequest(limit_price=D("900"))},
        {},
        "required",
        "stop_loss",
    ),
    (
        "bracket without take-profit",
        {"order_class": "bracket", "stop_loss": LegRequest(stop_price=D("1"))},
        {},
        "required",
        "take_profit",
    ),
    ("oco without legs", {"order_class": "oco", "side": "sell"}, {}, "required", "take_profit"),
    (
        "buy bracket take-profit below entry",
        {
            "order_class": "bracket",
            "type": "limit",
            "limit_price": D("200"),
            "take_profit": LegRequest(limit_price=D("190")),
            "stop_loss": LegRequest(stop_price=D("180")),
        },
        {},
        "leg_wrong_side",
        "take_profit",
    ),
    (
        "buy bracket stop-loss above entry",
        {
            "order_class": "bracket",
            "type": "limit",
            "limit_price": D("200"),
            "take_profit": LegRequest(limit_price=D("220")),
            "stop_loss": LegRequest(stop_price=D("205")),
        },
        {},
        "leg_wrong_side",
        "stop_loss",
    ),
    (
        "sell bracket take-profit above entry",
        {
            "order_class": "bracket",
            "side": "sell",
            "type": "limit",
            "limit_price": D("200"),
            "take_profit": LegRequest(limit_price=D("210")),
            "stop_loss": LegRequest(stop_price=D("220")),
        },
        {},
        "leg_wrong_side",
        "take_profit",
    ),
    (
        "sub-penny take-profit",
        {
            "order_class": "bracket",
            "take_profit": LegRequest(limit_price=D("900.001")),
            "stop_loss": LegRequest(stop_price=D("1")),
        },
        {},
        "sub_penny",
        "take_profit",
    ),
    (
        "take-profit with a stop price",
        {"order_class": "oto", "take_profit": LegRequest(limit_price=D("900"), stop_price=D("1"))},
        {},
        "not_applicable",
        "take_profit",
    ),
    (
        "oto with both legs",
        {
            "order_class": "oto",
            "take_profit": LegRequest(limit_price=D("900")),
            "stop_loss": LegRequest(stop_price=D("1")),
        },
        {},
        "oto_one_leg",
        "take_profit",
    ),
    ("oto without a leg", {"order_class": "oto"}, {}, "oto_one_leg", "take_profit"),
    (
        "extended hours market order",
        {"extended_hours": True},
        {},
        "extended_hours_limit_day",
        "extended_hours",
    ),
    (
        "extended hours gtc limit",
        {"extended_hours": True, "type": "limit", "limit_price": D("230"), "time_in_force": "gtc"},
        {},
        "extended_hours_limit_day",
        "extended_hours",
    ),
    ("more than the buying power", {"qty": D("2000")}, {}, "insufficient_buying_power", "qty"),
    (
        "notional over the buying power",
        {"qty": None, "notional": D("250000")},
        {},
        "insufficient_buying_power",
        "notional",
    ),
    (
        "short sale of a hard-to-borrow asset",
        {"symbol": "GME", "side": "sell"},
        {},
        "not_shortable",
        "qty",
    ),
    ("fractional short sale", {"side": "sell", "qty": D("0.5")}, {}, "not_shortable", "qty"),
    (
        "position above the desk's size limit",
        {"qty": D("10")},
        {"MAX_POSITION_SIZE": D("1000")},
        "max_position_size",
        "qty",
    ),
]


@pytest.mark.parametrize(
    ("changes", "overrides", "code", "field"),
    [pytest.param(*row[1:], id=row[0]) for row in INVALID],
)
def test_an_invalid_order_gets_one_error_with_its_code_and_field(
    desk, settings, changes, overrides, code, field
):
    for name, value in overrides.items():
        setattr(settings, name, value)

    verdict = desk.validate(order(**changes))

    assert not verdict.valid
    assert [(issue.code, issue.field) for issue in verdict.errors] == [(code, field)]
    assert verdict.recommendations == []


# (case, order changes, expected warnings, expected recommendations)
VALID = [
    ("one share at market", {}, [], ["bracket_order", "stop_loss"]),
    (
        "limit far below the market",
        {"type": "limit", "limit_price": D("100")},
        ["price_far_from_market"],
        ["bracket_order", "stop_loss"],
    ),
    (
        "most of the buying power",
        {"type": "limit", "limit_price": D("200"), "qty": D("850")},
        ["buying_power_high", "price_far_from_market"],
        ["bracket_order", "stop_loss"],
    ),
    (
        "bracket buy",
        {
            "order_class": "bracket",
            "take_profit": LegRequest(limit_price=D("900")),
            "stop_loss": LegRequest(stop_price=D("1")),
        },
        [],
        [],
    ),
    (
        "oto with a take-profit only",
        {"order_class": "oto", "take_profit": LegRequest(limit_price=D("900"))},
        [],
        ["stop_loss"],
    ),
    (
        "oto with a stop-loss only",
        {"order_class": "oto", "stop_loss": LegRequest(stop_price=D("1"))},
        [],
        [],
    ),
    ("notional buy", {"qty": None, "notional": D("100")}, [], ["stop_loss"]),
    ("fractional buy", {"qty": D("0.25")}, [], ["stop_loss"]),
    ("short sale", {"side": "sell"}, [], []),
    (
        "oco sell",
        {
            "side": "sell",
            "order_class": "oco",
            "time_in_force": "gtc",
            "take_profit": LegRequest(limit_price=D("900")),
            "stop_loss": LegRequest(stop_price=D("1"), limit_price=D("0.9")),
        },
        [],
        [],
    ),
    (
        "extended-hours limit for the day",
        {"type": "limit", "limit_price": D("1000"), "extended_hours": True},
        ["price_far_from_market"],
        ["bracket_order", "stop_loss"],
    ),
    (
        "trailing stop by percent",
        {
            "side": "sell",
            "type": "trailing_stop",
            "trail_percent": D("2.5"),
            "time_in_force": "gtc",
        },
        [],
        [],
    ),
    (
        "four decimals under $1",
        {"symbol": "SIRI", "type": "limit", "limit_price": D("0.9512")},
        ["price_far_from_market"],
        ["bracket_order", "stop_loss"],
    ),
    (
        "class B share",
        {"symbol": "BRK.B", "time_in_force": "opg"},
        [],
        ["bracket_order", "stop_loss"],
    ),
]


@pytest.mark.parametrize(
    ("changes", "warnings", "recommendations"),
    [pytest.param(*row[1:], id=row[0]) for row in VALID],
)
def test_a_valid_order_gets_its_warnings_and_recommendations(
    desk, changes, warnings, recommendations
):
    verdict = desk.validate(order(**changes))

    assert verdict.valid, verdict.errors
    assert sorted(codes(verdict.warnings)) == warnings
    assert codes(verdict.recommendations) == recommendations


def test_warnings_say_how_far_and_how_much(desk):
    verdict = desk.validate(
        order(type="limit", limit_price=D("200"), qty=D("850")), now=TUESDAY_OPEN
    )

    by_code = {issue.code: issue for issue in verdict.warnings}
    assert by_code["buying_power_high"].message.startswith("This order uses 85% of your buying")
    assert "$170,000.00 of $200,000.00" in by_code["buying_power_high"].message
    market = validation.cached_quote(desk.broker, "AAPL").mid
    expected = (market - D("200")) / market * 100
    assert f"{expected:.1f}% below the market" in by_code["price_far_from_market"].message
    assert by_code["price_far_from_market"].field == "limit_price"


def test_a_price_within_the_threshold_gets_no_warning(desk, settings):
    market = validation.cached_quote(desk.broker, "AAPL").mid
    settings.PRICE_WARNING_PCT = D("5")
    near = (market * D("1.04")).quantize(D("0.01"))
    far = (market * D("1.06")).quantize(D("0.01"))

    assert codes(desk.validate(order(type="limit", limit_price=near)).warnings) == []
    assert codes(desk.validate(order(type="limit", limit_price=far)).warnings) == [
        "price_far_from_market"
    ]


def test_an_over_sized_sell_only_counts_the_short_part_against_buying_power(trader):
    desk = make_desk(trader, positions={"AAPL": D("1500")})

    # 1,500 held: selling 1,600 shorts only 100 (about $23k), well within $200k.
    assert desk.validate(order(side="sell", qty=D("1600"))).valid
    # Buying 1,500 more would cost about $350k.
    assert codes(desk.validate(order(qty=D("1500"))).errors) == ["insufficient_buying_power"]


def test_reducing_a_position_above_the_size_limit_is_allowed(trader, settings):
    settings.MAX_POSITION_SIZE = D("1000")
    desk = make_desk(trader, positions={"AAPL": D("100")})

    assert desk.validate(order(side="sell", qty=D("10"))).valid
    assert codes(desk.validate(order(qty=D("1"))).errors) == ["max_position_size"]


def test_a_buy_to_cover_a_short_gets_no_stop_loss_recommendation(trader):
    desk = make_desk(trader, positions={"AAPL": D("-10")})

    verdict = desk.validate(order(qty=D("5")))

    assert verdict.valid
    assert verdict.recommendations == []


def test_the_daily_order_limit_counts_todays_orders_of_the_user(desk, settings):
    settings.MAX_DAILY_TRADES = 2
    desk_order(desk.account, status="filled")
    assert desk.validate(order(), now=None).valid

    desk_order(desk.account, status="canceled")
    verdict = desk.validate(order(), now=None)

    assert [(i.code, i.field) for i in verdict.errors] == [("max_daily_trades", None)]
    assert "placed 2 orders today" in verdict.errors[0].message


def test_the_first_hard_error_stops_and_earlier_warnings_stay(desk, settings):
    settings.TRADEDESK_SIM_ALWAYS_OPEN = False

    verdict = desk.validate(order(qty=D("2000")), now=THANKSGIVING)

    assert codes(verdict.warnings) == ["market_closed"]
    assert codes(verdict.errors) == ["insufficient_buying_power"]


# --- market hours -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("now", "next_open"),
    [
        pytest.param(THANKSGIVING, "Friday 27 November 2026 at 09:30", id="thanksgiving"),
        pytest.param(
            datetime(2026, 11, 28, 17, 0, tzinfo=UTC),
            "Monday 30 November 2026 at 09:30",
            id="saturday",
        ),
        pytest.param(
            datetime(2026, 11, 24, 22, 0, tzinfo=UTC),
            "Wednesday 25 November 2026 at 09:30",
            id="after-hours",
        ),
    ],
)
def test_a_closed_market_warns_that_the_order_queues_until_the_next_open(
    desk, settings, now, next_open
):
    settings.TRADEDESK_SIM_ALWAYS_OPEN = False

    verdict = desk.validate(order(), now=now)

    assert verdict.valid
    assert [(w.code, w.field) for w in verdict.warnings] == [("market_closed", None)]
    assert next_open in verdict.warnings[0].message
    assert "New York time" in verdict.warnings[0].message


def test_an_open_market_gives_no_hours_warning(desk, settings):
    settings.TRADEDESK_SIM_ALWAYS_OPEN = False

    assert desk.validate(order(), now=TUESDAY_OPEN).warnings == []


def test_an_extended_hours_limit_order_trades_after_hours_without_a_warning(desk, settings):
    settings.TRADEDESK_SIM_ALWAYS_OPEN = False
    after_hours = datetime(2026, 11, 24, 22, 0, tzinfo=UTC)  # 17:00 in New York
    market = validation.cached_quote(desk.broker, "AAPL").mid.quantize(D("0.01"))

    verdict = desk.validate(
        order(type="limit", limit_price=market, extended_hours=True), now=after_hours
    )

    assert verdict.valid
    assert verdict.warnings == []


def test_the_demo_setting_keeps_the_paper_exchange_open_on_holidays(desk, settings):
    settings.TRADEDESK_SIM_ALWAYS_OPEN = True

    assert desk.validate(order(), now=THANKSGIVING).warnings == []


# --- the cache ----------------------------------------------------------------------
def test_a_second_validation_within_the_cache_time_does_not_call_the_broker(desk):
    desk.validate(order())
    first = dict(desk.broker.calls)
    desk.validate(order(qty=D("2")))

    assert first == {
        "get_asset": 1,
        "get_latest_quotes": 1,
        "get_account": 1,
        "list_positions": 1,
    }
    assert dict(desk.broker.calls) == first


def test_without_the_cache_every_validation_calls_the_broker(desk, settings):
    settings.VALIDATION_CACHE_SECONDS = 0

    desk.validate(order())
    desk.validate(order())

    assert desk.broker.calls["get_account"] == 2
    assert desk.broker.calls["get_latest_quotes"] == 2


def test_the_account_cache_is_per_broker_account_and_quotes_per_symbol(desk, other_trader):
    other = make_desk(other_trader)
    desk.validate(order())
    other.validate(order())
    other.validate(order(symbol="MSFT"))

    assert other.broker.calls["get_account"] == 1
    assert other.broker.calls["get_latest_quotes"] == 1  # AAPL came from the cache


# --- codes ----------------------------------------------------------------------------
def test_every_code_the_desk_emits_is_documented_and_every_documented_code_is_used():
    source = Path(validation.__file__).read_text()
    emitted = set(re.findall(r"\.(?:error|warn|recommend)\(\s*\"([a-z_]+)\"", source))
    services = Path(validation.__file__).with_name("services.py").read_text()
    emitted |= set(re.findall(r"Issue\(\s*\"([a-z_]+)\"", source + services))

    assert emitted == set(CODES)
