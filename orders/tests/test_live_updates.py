"""Live order updates: a change at the broker reaches the desk's database by the stream."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from accounts.services import broker_for, link_broker_account
from conftest import place_resting_buy
from orders.models import Order
from orders.sync.live import follow_order_updates
from tradedesk.broker.tests.alpaca_fakes import KEY_ID, SECRET

pytestmark = pytest.mark.django_db(transaction=True)
EXECUTIONS = ("7e544af3-3104-4e1a-8cbc-dab2624949ff", "2f63ea93-423d-4169-b3f6-3fdafc10c418")


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


def wait_for(predicate, timeout: float = 5.0) -> None:
    """Poll from the scenario's worker thread until predicate() holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.02)


def link_alpaca(trader):
    return link_broker_account(
        user=trader, provider="alpaca", label="Alpaca", paper=True, key_id=KEY_ID, secret=SECRET
    )


def test_alpaca_trade_updates_reach_the_desk_each_audited(
    trader, alpaca_settings, fake_alpaca, fake_trading_stream
):
    account = link_alpaca(trader)
    # Placed at Alpaca outside the desk: the catch-up when the stream is up brings it in.
    placed = fake_alpaca.add_order(qty=10, type="limit", limit_price=150, time_in_force="gtc")
    push = fake_trading_stream.push_trade_update

    def trade_at_alpaca() -> None:
        wait_for(lambda: Order.objects.filter(broker_order_id=placed["id"]).exists())
        partial = fake_alpaca.execute(placed["id"], "4", "149.1")
        for _ in range(2):  # delivered twice
            push("partial_fill", partial, price="149.1", qty="4", execution_id=EXECUTIONS[0])
        push("pending_cancel", fake_alpaca.change(placed["id"], status="pending_cancel"))
        refused = fake_alpaca.change(placed["id"], status="partially_filled")
        push("order_cancel_rejected", refused)
        filled = fake_alpaca.execute(placed["id"], "6", "149.3")
        push("fill", filled, price="149.3", qty="6", position_qty="10", execution_id=EXECUTIONS[1])

    order = Order.objects.none()

    def filled() -> bool:
        nonlocal order
        order = Order.objects.filter(broker_order_id=placed["id"], status="filled").first()
        return order is not None

    follow_until(trade_at_alpaca, filled, feeds_up=2)

    assert order.broker_account_id == account.pk
    assert (order.filled_qty, order.filled_avg_price) == (10, Decimal("149.22"))
    streamed = order.events.filter(source="stream").values_list(
        "event", "status", "price", "qty", "execution_id"
    )
    assert list(streamed) == [
        ("partial_fill", "partially_filled", Decimal("149.1"), 4, EXECUTIONS[0]),
        ("pending_cancel", "pending_cancel", Decimal("149.1"), None, ""),
        # The refusal leaves the order pending_cancel, as it was.
        ("order_cancel_rejected", "pending_cancel", Decimal("149.1"), None, ""),
        ("fill", "filled", Decimal("149.3"), 6, EXECUTIONS[1]),
    ]
    refusal = order.events.get(event="order_cancel_rejected")
    assert refusal.detail == {"broker_status": "partially_filled"}


def test_updates_missed_while_the_stream_was_down_are_caught_up_on_reconnect(
    trader, alpaca_settings, fake_alpaca, fake_trading_stream
):
    account = link_alpaca(trader)
    order = place_resting_buy(trader, limit="150", account=account)
    elsewhere = fake_alpaca.add_order(type="limit", limit_price=140, time_in_force="gtc")

    def fill_while_the_connection_dies() -> None:
        # The first catch-up (stream up) has run once it brought in the outside order.
        wait_for(lambda: Order.objects.filter(broker_order_id=elsewhere["id"]).exists())
        fake_alpaca.fill(order.broker_order_id, "149.5")  # its trade update is lost
        fake_trading_stream.drop()

    follow_until(fill_while_the_connection_dies, lambda: _status(order) == "filled", feeds_up=2)

    stored = Order.objects.get(pk=order.pk)
    assert stored.filled_avg_price == Decimal("149.5")
    assert list(stored.events.filter(event="fill").values_list("source", flat=True)) == ["sync"]
    assert fake_trading_stream.connects == 2


def test_a_failed_catch_up_is_logged_and_updates_still_flow(
    trader, alpaca_settings, fake_alpaca, fake_trading_stream, caplog
):
    account = link_alpaca(trader)
    order = place_resting_buy(trader, limit="150", account=account)
    fake_alpaca.fail_next(500, {"message": "internal server error"})  # the catch-up's request

    def fill_at_alpaca() -> None:
        wait_for(lambda: "catching up on missed order updates failed" in caplog.text)
        filled = fake_alpaca.fill(order.broker_order_id, "149.5")
        fake_trading_stream.push_trade_update("fill", filled, price="149.5", qty="1")

    follow_until(fill_at_alpaca, lambda: _status(order) == "filled", feeds_up=2)

    assert [r.path for r in fake_alpaca.requests_to("GET", "/v2/orders")] == ["/v2/orders"]
    assert Order.objects.get(pk=order.pk).events.filter(event="fill", source="stream").exists()
