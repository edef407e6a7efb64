"""Cancel-all and close-position services: each order or position through the one gate."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.selectors import default_broker_account
from conftest import place_resting_buy
from orders import services
from orders.models import Order, TradingHalt
from orders.validation import OrderInput

pytestmark = pytest.mark.django_db


def _buy(user, symbol: str, qty: str = "2") -> Order:
    return services.place_order(
        user=user,
        broker_account=default_broker_account(user),
        order_input=OrderInput(
            symbol=symbol, side="buy", type="market", time_in_force="day", qty=Decimal(qty)
        ),
    ).order


def test_cancel_all_cancels_each_open_order_and_reports_refusals(trader, other_trader, settings):
    mine = [place_resting_buy(trader, limit=p) for p in ("1", "2", "3")]
    theirs = place_resting_buy(other_trader)
    settings.ORDER_COMMAND_RATES = settings.ORDER_COMMAND_RATES | {"cancel": "2/min"}
    outcomes = services.cancel_all_orders(
        user=trader, broker_account=default_broker_account(trader), source="api", actor=trader
    )
    assert {o.order.pk for o in outcomes} == {o.pk for o in mine}
    assert [o.error is None for o in outcomes].count(True) == 2
    refused = [o for o in outcomes if o.error is not None]
    assert refused and refused[0].error.__class__.__name__ == "RateLimitExceeded"
    assert Order.objects.get(pk=refused[0].order.pk).is_open
    assert Order.objects.filter(user=trader, status="canceled").count() == 2
    assert Order.objects.get(pk=theirs.pk).is_open
    events = Order.objects.get(pk=outcomes[0].order.pk).events.values_list("event", flat=True)
    assert "cancel_requested" in events


def test_close_position_places_the_closing_order_through_the_gate(trader):
    _buy(trader, "AAPL", "3")
    account = default_broker_account(trader)
    TradingHalt.objects.create(scope="user", user=trader, mode="reducing", reason="risk")
    part = services.close_position(
        user=trader, broker_account=account, symbol="AAPL", qty=Decimal("1"), source="api"
    )
    assert (part.order.side, part.order.qty, part.order.status) == ("sell", 1, "filled")
    # More than is held closes what is held, never flips the position.
    rest = services.close_position(
        user=trader, broker_account=account, symbol="AAPL", qty=Decimal("50"), source="api"
    )
    assert rest.order.qty == 2
    with pytest.raises(services.NoPosition):
        services.close_position(user=trader, broker_account=account, symbol="AAPL", source="api")


def test_a_halt_refuses_even_a_closing_order(trader):
    _buy(trader, "AAPL")
    TradingHalt.objects.create(scope="user", user=trader, mode="halted", reason="stop")
    with pytest.raises(services.OrderInvalid) as refused:
        services.close_position(
            user=trader, broker_account=default_broker_account(trader), symbol="AAPL",
            source="api",
        )  # fmt: skip
    assert refused.value.verdict.errors[0].code == "trading_halted"


def test_close_all_closes_every_position_and_reports_each(trader):
    _buy(trader, "AAPL")
    _buy(trader, "MSFT", "1")
    resting = place_resting_buy(trader, symbol="NVDA")
    outcomes = services.close_all_positions(
        user=trader, broker_account=default_broker_account(trader), source="api",
        cancel_orders=True,
    )  # fmt: skip
    assert sorted((o.symbol, o.placement.order.side) for o in outcomes) == [
        ("AAPL", "sell"),
        ("MSFT", "sell"),
    ]
    assert Order.objects.get(pk=resting.pk).status == "canceled"
    _buy(trader, "AAPL")
    TradingHalt.objects.create(scope="user", user=trader, mode="halted", reason="stop")
    (halted,) = services.close_all_positions(
        user=trader, broker_account=default_broker_account(trader), source="api"
    )
    assert halted.symbol == "AAPL" and halted.placement is None
    assert halted.error.verdict.errors[0].code == "trading_halted"
