"""Live order updates: a change at the broker reaches the desk's database by the stream."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from accounts.services import broker_for, link_broker_account
from conftest import place_resting_buy
from orders.live import follow_order_updates
from orders.models import Order
from tradedesk.broker.tests.alpaca_fakes import KEY_ID, SECRET

pytestmark = pytest.mark.django_db(transaction=True)


def _status(order: Order) -> str:
    return Order.objects.get(pk=order.pk).status


def follow_until(change, done, *, feeds_up: int, timeout: float = 10.0) -> None:
    """Run the follower; once `feeds_up` feeds report up, make `change`; wait for `done`."""

    async def scenario() -> None:
        stop = asyncio.Event()
        up: list[str] = []

        async def on_status(state: str, detail: str) -> None:
            if state == "up":
                up.append(detail)

        follower = asyncio.create_task(
            follow_order_updates(stop, refresh_seconds=0.2, on_status=on_status)
        )
        try:
            deadline = time.monotonic() + timeout
            while len(up) < feeds_up:
                assert time.monotonic() < deadline, f"feeds up: {up}"
                await asyncio.sleep(0.05)
            await asyncio.to_thread(change)
            while not await asyncio.to_thread(done):
                assert time.monotonic() < deadline, "the update never reached the desk"
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await follower

    asyncio.run(scenario())


def test_a_paper_exchange_cancel_reaches_the_desk(trader):
    account = trader.broker_accounts.get()
    order = place_resting_buy(trader, limit="10", account=account)

    follow_until(
        lambda: broker_for(account).cancel_order(order.broker_order_id),
        lambda: _status(order) == "canceled",
        feeds_up=1,
    )
    events = list(Order.objects.get(pk=order.pk).events.values_list("event", "source"))
    assert ("canceled", "stream") in events


def test_an_alpaca_fill_reaches_the_desk(trader, alpaca_settings, fake_alpaca, fake_trading_stream):
    account = link_broker_account(
        user=trader, provider="alpaca", label="Alpaca", paper=True, key_id=KEY_ID, secret=SECRET
    )
    order = place_resting_buy(trader, limit="150", account=account)

    def fill_at_alpaca() -> None:
        filled = fake_alpaca.fill(order.broker_order_id, "149.5")
        assert fake_trading_stream.push_trade_update("fill", filled, price="149.5", qty="1") == 1

    follow_until(fill_at_alpaca, lambda: _status(order) == "filled", feeds_up=2)
    stored = Order.objects.get(pk=order.pk)
    assert (stored.filled_qty, stored.filled_avg_price) == (1, Decimal("149.5"))
    assert stored.events.filter(event="fill", source="stream").exists()
