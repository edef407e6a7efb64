"""Properties of validate_order that hold for any input (Hypothesis)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orders.validation import PRICES_FOR_TYPE, OrderInput
from tradedesk.broker import types

from .validation_support import make_desk

pytestmark = pytest.mark.django_db

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _one_of_or_junk(values: tuple[str, ...]):
    return st.one_of(st.sampled_from(values), st.text(max_size=8))


numbers = st.one_of(
    st.none(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(min_value=Decimal("-10"), max_value=Decimal("2000"), places=4),
)
legs = st.one_of(st.none(), st.builds(types.LegRequest, limit_price=numbers, stop_price=numbers))
junk_orders = st.builds(
    OrderInput,
    symbol=st.one_of(
        st.sampled_from(["AAPL", "GME", "SIRI", "SNDL", "BRK.B", "ZZZZ"]), st.text(max_size=8)
    ),
    side=_one_of_or_junk(types.ORDER_SIDES),
    type=_one_of_or_junk(types.ORDER_TYPES),
    time_in_force=_one_of_or_junk(types.TIME_IN_FORCE),
    qty=numbers,
    notional=numbers,
    limit_price=numbers,
    stop_price=numbers,
    trail_price=numbers,
    trail_percent=numbers,
    extended_hours=st.booleans(),
    client_order_id=st.text(max_size=20),
    order_class=_one_of_or_junk(types.ORDER_CLASSES),
    take_profit=legs,
    stop_loss=legs,
)
prices = st.decimals(min_value=Decimal("0.5"), max_value=Decimal("1000"), places=2)
take_profits = st.one_of(st.none(), st.builds(types.LegRequest, limit_price=prices))
stop_losses = st.one_of(st.none(), st.builds(types.LegRequest, stop_price=prices))


@st.composite
def plausible_orders(draw) -> OrderInput:
    """Orders that get past the first checks, so the later ones (hours, buying power, day
    trades, legs on the right side) run too; each may still break one rule."""
    order_type = draw(st.sampled_from(types.ORDER_TYPES))
    order_class = draw(st.sampled_from(types.ORDER_CLASSES))
    uses = PRICES_FOR_TYPE[order_type]
    trail = draw(st.sampled_from(["trail_price", "trail_percent"]))
    price_values = {
        name: draw(prices)
        for name in ("limit_price", "stop_price", "trail_price")
        if name in uses and (order_type != "trailing_stop" or name == trail)
    }
    if order_type == "trailing_stop" and trail == "trail_percent":
        price_values["trail_percent"] = draw(
            st.decimals(min_value=Decimal("0.1"), max_value=Decimal("20"), places=1)
        )
    return OrderInput(
        symbol=draw(st.sampled_from(["AAPL", "MSFT", "GME", "SIRI", "BRK.B"])),
        side=draw(st.sampled_from(types.ORDER_SIDES)),
        type=order_type,
        time_in_force=draw(st.sampled_from(types.TIME_IN_FORCE) | st.just("day")),
        qty=draw(st.integers(min_value=1, max_value=1200).map(Decimal)),
        extended_hours=draw(st.booleans() | st.just(False)),
        order_class=order_class,
        take_profit=draw(take_profits) if order_class != "simple" else None,
        stop_loss=draw(stop_losses) if order_class != "simple" else None,
        **price_values,
    )


any_order = st.one_of(junk_orders, plausible_orders())
plain_orders = st.builds(
    OrderInput,
    symbol=st.sampled_from(["AAPL", "MSFT", "KO", "BRK.B"]),
    side=st.sampled_from(types.ORDER_SIDES),
    type=st.just("market"),
    time_in_force=st.sampled_from(["day", "gtc"]),
    qty=st.integers(min_value=1, max_value=20).map(Decimal),
)


@pytest.fixture
def desk(trader):
    return make_desk(trader)


@PROPERTY_SETTINGS
@given(order_input=any_order)
def test_no_input_makes_validation_raise_and_every_issue_is_documented(desk, order_input):
    # desk.validate asserts every issue has a documented code, a real field and a message.
    verdict = desk.validate(order_input)

    assert verdict.valid == (verdict.errors == [])
    if not verdict.valid:
        assert verdict.recommendations == []


@PROPERTY_SETTINGS
@given(order_input=plain_orders, client_order_id=st.text(max_size=128))
def test_a_valid_order_stays_valid_whatever_its_client_order_id(desk, order_input, client_order_id):
    before = desk.validate(order_input)
    after = desk.validate(replace(order_input, client_order_id=client_order_id))

    assert before.valid, before.errors
    assert after.as_dict() == before.as_dict()
