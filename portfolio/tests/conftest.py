"""Hand-made executions: orders and their fills as a broker would have reported them."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from accounts.models import BrokerAccount
from orders.models import Order
from portfolio.models import Fill

T0 = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
_ids = itertools.count(1)


def make_order(account: BrokerAccount, symbol: str, side: str, qty, *, replaces: str = "") -> Order:
    n = next(_ids)
    return Order.objects.create(
        user=account.user,
        broker_account=account,
        broker_order_id=f"ord-{n}",
        client_order_id=f"client-{n}",
        symbol=symbol,
        side=side,
        type="market",
        time_in_force="day",
        qty=Decimal(str(qty)),
        status="filled",
        replaces=replaces,
    )


def fill(order: Order, qty, price, *, minutes: int, fee="0") -> Fill:
    return Fill.objects.create(
        broker_account=order.broker_account,
        order=order,
        broker_order_id=order.broker_order_id,
        execution_id=f"exec-{next(_ids)}",
        symbol=order.symbol,
        side=order.side,
        qty=Decimal(str(qty)),
        price=Decimal(str(price)),
        fee=Decimal(str(fee)),
        at=T0 + timedelta(minutes=minutes),
        source="manual",
    )


def trade(account, symbol, side, *fills, minutes: int, replaces: str = "", fee="0") -> Order:
    """One order with its fills: (qty, price) pairs a minute apart from `minutes`."""
    order = make_order(
        account, symbol, side, sum(Decimal(str(q)) for q, _ in fills), replaces=replaces
    )
    for offset, (qty, price) in enumerate(fills):
        fill(order, qty, price, minutes=minutes + offset, fee=fee)
    return order


@pytest.fixture
def account(trader) -> BrokerAccount:
    return trader.broker_accounts.get()


@pytest.fixture
def second_account(trader) -> BrokerAccount:
    from tradedesk.broker.sim.exchange import open_account

    return BrokerAccount.objects.create(
        user=trader, provider="sim", paper=True, label="Second paper", key_id=open_account()
    )
