"""The market-data and order-update streams against loopback WebSocket fakes."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tradedesk.broker import BrokerCredentials
from tradedesk.broker.alpaca import AlpacaMarketDataStream, AlpacaOrderUpdateStream
from tradedesk.broker.errors import BrokerUnavailable
from tradedesk.broker.types import Bar, OrderUpdate, Quote, Trade

from .alpaca_fakes import (
    FakeAlpacaREST,
    FakeTradingStream,
    eventually,
    load_fixture,
)

QUOTE = {**load_fixture("stream_md_quote.json"), "S": "AAPL"}
TRADE = load_fixture("stream_md_trade.json")  # AAPL
# Alpaca's live bars carry n and vw (see Alpaca's documented test-stream session); the docs'
# entity example lacks them, and alpaca-py refuses a bar without them.
BAR = {**load_fixture("stream_md_bar.json"), "S": "AAPL", "n": 16, "vw": 389.05}


class Recorder:
    def __init__(self) -> None:
        self.items: list = []
        self.statuses: list[tuple[str, str]] = []
        self.refused: list[tuple[set[str], str]] = []

    async def on_refused(self, symbols: set[str], reason: str) -> None:
        self.refused.append((symbols, reason))

    async def on_item(self, item) -> None:
        self.items.append(item)

    async def on_status(self, state: str, detail: str) -> None:
        self.statuses.append((state, detail))

    def states(self) -> list[str]:
        return [state for state, _ in self.statuses]


@contextlib.asynccontextmanager
async def running(stream) -> AsyncIterator[asyncio.Task]:
    task = asyncio.create_task(stream.run())
    try:
        yield task
    finally:
        await stream.stop()
        await asyncio.wait_for(task, 3)


def market_data_stream(recorder: Recorder, credentials: BrokerCredentials, **options):
    return AlpacaMarketDataStream(
        recorder.on_item,
        recorder.on_status,
        credentials,
        on_refused=recorder.on_refused,
        **{"reconnect_min_backoff": 0.05, **options},
    )


@pytest.mark.asyncio
async def test_market_data_arrives_as_decimal_data_classes(fake_md_stream, alpaca_credentials):
    recorder = Recorder()
    stream = market_data_stream(recorder, alpaca_credentials)
    async with running(stream):
        await stream.set_symbols({"AAPL", "MSFT"})
        await eventually(lambda: fake_md_stream.subscribed({"AAPL", "MSFT"}))
        assert recorder.statuses == [("up", "authenticated")]
        auth = fake_md_stream.received[0]
        assert auth == {
            "action": "auth",
            "key": alpaca_credentials.key_id,
            "secret": alpaca_credentials.secret,
        }
        fake_md_stream.push(QUOTE, TRADE, BAR)
        await eventually(lambda: len(recorder.items) == 3)
    quote, trade, bar = recorder.items
    assert quote == Quote(
        symbol="AAPL",
        bid_price=Decimal("87.66"),
        bid_size=Decimal("1"),
        ask_price=Decimal("87.68"),
        ask_size=Decimal("4"),
        timestamp=datetime(2021, 2, 22, 15, 51, 45, 335689, tzinfo=UTC),
    )
    assert trade == Trade(
        symbol="AAPL",
        price=Decimal("126.55"),
        size=Decimal("1"),
        timestamp=datetime(2021, 2, 22, 15, 51, 44, 208000, tzinfo=UTC),
    )
    assert bar == Bar(
        symbol="AAPL",
        timestamp=datetime(2021, 2, 22, 19, 15, tzinfo=UTC),
        open=Decimal("388.985"),
        high=Decimal("389.13"),
        low=Decimal("388.975"),
        close=Decimal("389.12"),
        volume=Decimal("49378"),
    )
    assert recorder.states() == ["up", "down"]  # down: stopped


@pytest.mark.asyncio
async def test_set_symbols_subscribes_exactly_the_given_set(fake_md_stream, alpaca_credentials):
    recorder = Recorder()
    stream = market_data_stream(recorder, alpaca_credentials)
    async with running(stream):
        await stream.set_symbols({"AAPL", "MSFT"})
        await eventually(lambda: fake_md_stream.subscribed({"AAPL", "MSFT"}))
        await stream.set_symbols({"MSFT", "TSLA"})
        await eventually(lambda: fake_md_stream.subscribed({"MSFT", "TSLA"}))
        unsubscribes = [m for m in fake_md_stream.received if m.get("action") == "unsubscribe"]
        assert {c for m in unsubscribes for c in m if c != "action"} == {
            "trades",
            "quotes",
            "bars",
        }
        fake_md_stream.push(QUOTE)  # AAPL: no longer wanted
        fake_md_stream.push({**TRADE, "S": "TSLA"})
        await eventually(lambda: recorder.items)
        await asyncio.sleep(0.05)
    assert [(type(i), i.symbol) for i in recorder.items] == [(Trade, "TSLA")]


@pytest.mark.asyncio
async def test_stream_waits_for_symbols_before_connecting(fake_md_stream, alpaca_credentials):
    stream = market_data_stream(Recorder(), alpaca_credentials)
    async with running(stream):
        await asyncio.sleep(0.1)
        assert fake_md_stream.connects == 0


@pytest.mark.asyncio
async def test_refused_auth_is_reported_down(fake_md_stream, alpaca_credentials):
    fake_md_stream.auth_mode = "refuse"
    recorder = Recorder()
    stream = market_data_stream(recorder, alpaca_credentials)
    async with running(stream):
        await stream.set_symbols({"AAPL"})
        await eventually(lambda: recorder.statuses)
        # alpaca-py keeps retrying in the background; the desk is told once.
        await eventually(lambda: fake_md_stream.connects >= 2)
        fake_md_stream.auth_mode = "ok"  # the keys are fixed: the next retry gets through
        await eventually(lambda: recorder.states() == ["down", "up"])
        await eventually(lambda: fake_md_stream.subscribed({"AAPL"}))
    assert recorder.statuses[0] == (
        "down",
        "connect or auth failed: auth failed (402): Alpaca refused the market-data keys",
    )


@pytest.mark.asyncio
async def test_a_second_connection_waits_its_turn_with_backoff(fake_md_stream, alpaca_credentials):
    """Alpaca's one connection per key: the second is refused with 406 and backs off (it does
    not hammer the endpoint or take the first one's place), then connects once it is free."""
    fake_md_stream.max_connections = 1
    first, second = Recorder(), Recorder()
    holder = market_data_stream(first, alpaca_credentials)
    waiter = market_data_stream(second, alpaca_credentials, reconnect_min_backoff=0.2)
    async with running(holder):
        await holder.set_symbols({"AAPL"})
        await eventually(lambda: fake_md_stream.subscribed({"AAPL"}))
        async with running(waiter):
            await waiter.set_symbols({"MSFT"})
            await eventually(lambda: second.statuses)
            assert second.statuses == [
                (
                    "down",
                    "connect or auth failed: connection limit exceeded (406): another "
                    "connection holds this key's one market-data stream; waiting to retry",
                )
            ]
            await asyncio.sleep(1.5)
            refused = list(fake_md_stream.refused_at)
            # Backoff from 0.2 s, doubling (with jitter down to half): at most 5 tries in
            # 1.5 s, where a tight loop would make hundreds.
            assert 2 <= len(refused) <= 5
            assert all(later - earlier >= 0.1 for earlier, later in itertools.pairwise(refused))
            assert first.states() == ["up"] and fake_md_stream.subscribed({"AAPL"})
            await holder.stop()  # the first hub goes away: the waiter takes the connection
            await eventually(lambda: second.states() == ["down", "up"], timeout=5)
            await eventually(lambda: fake_md_stream.subscribed({"MSFT"}))


@pytest.mark.asyncio
async def test_symbols_over_alpacas_limit_are_refused_and_the_rest_keep_streaming(
    fake_md_stream, alpaca_credentials
):
    fake_md_stream.symbol_limit = 2
    recorder = Recorder()
    stream = market_data_stream(recorder, alpaca_credentials)
    async with running(stream):
        await stream.set_symbols({"AAPL", "MSFT"})
        await eventually(lambda: fake_md_stream.subscribed({"AAPL", "MSFT"}))
        await stream.set_symbols({"AAPL", "MSFT", "TSLA"})
        await eventually(lambda: recorder.refused)
        assert recorder.refused == [({"TSLA"}, "symbol limit exceeded (405)")]
        # Out of the SDK's table, so the next subscribe (the whole table) is not refused too.
        await stream.set_symbols({"AAPL", "MSFT", "TSLA", "SPY"})
        await eventually(lambda: len(recorder.refused) == 2)
        assert recorder.refused[1] == ({"SPY"}, "symbol limit exceeded (405)")
        fake_md_stream.push(QUOTE)
        await eventually(lambda: recorder.items)
        # Refused stays refused while wanted; released and asked again with room, it is served.
        await stream.set_symbols({"AAPL"})
        await eventually(lambda: fake_md_stream.subscribed({"AAPL"}))
        await stream.set_symbols({"AAPL", "TSLA"})
        await eventually(lambda: fake_md_stream.subscribed({"AAPL", "TSLA"}))
    assert recorder.states() == ["up", "down"]  # refusals never took the feed down
    assert recorder.items[0].symbol == "AAPL"


@pytest.mark.asyncio
async def test_a_feed_outside_the_plan_ends_run_for_the_hub_to_retry(
    fake_md_stream, alpaca_credentials
):
    """alpaca-py gives up by itself on 409 "insufficient subscription" (e.g. SIP on the basic
    plan): run() must not return as if stopped, or the hub would think it was told to stop."""
    fake_md_stream.auth_mode = "insufficient"
    recorder = Recorder()
    stream = market_data_stream(recorder, alpaca_credentials)
    await stream.set_symbols({"AAPL"})
    with pytest.raises(BrokerUnavailable, match=r"insufficient subscription \(409\)"):
        await asyncio.wait_for(stream.run(), 3)
    assert recorder.statuses == [
        ("down", "connect or auth failed: insufficient subscription (409)")
    ]


@pytest.mark.asyncio
async def test_unanswered_auth_is_reported_down_after_the_timeout(
    fake_md_stream, alpaca_credentials
):
    fake_md_stream.auth_mode = "silent"
    recorder = Recorder()
    stream = market_data_stream(recorder, alpaca_credentials, auth_timeout=0.2)
    async with running(stream):
        await stream.set_symbols({"AAPL"})
        await eventually(lambda: recorder.statuses)
        assert recorder.statuses == [("down", "not authenticated within 0.2 s")]
        fake_md_stream.auth_mode = "ok"  # the server recovers: the retry gets through
        await eventually(lambda: recorder.states() == ["down", "up"])
        await eventually(lambda: fake_md_stream.subscribed({"AAPL"}))


@pytest.mark.asyncio
async def test_reconnects_and_resubscribes_after_a_drop(fake_md_stream, alpaca_credentials):
    recorder = Recorder()
    stream = market_data_stream(recorder, alpaca_credentials)
    async with running(stream):
        await stream.set_symbols({"AAPL"})
        await eventually(lambda: fake_md_stream.subscribed({"AAPL"}))
        fake_md_stream.drop()
        await eventually(lambda: recorder.states() == ["up", "down", "up"])
        assert recorder.statuses[1] == ("down", "disconnected")
        await eventually(lambda: fake_md_stream.subscribed({"AAPL"}))
        assert fake_md_stream.connects == 2
        fake_md_stream.push(TRADE)
        await eventually(lambda: recorder.items)
    assert recorder.items[0].price == Decimal("126.55")


@pytest.mark.asyncio
async def test_stop_before_any_symbols_returns(fake_md_stream, alpaca_credentials):
    stream = market_data_stream(Recorder(), alpaca_credentials)
    task = asyncio.create_task(stream.run())
    await asyncio.sleep(0)
    await stream.stop()
    await asyncio.wait_for(task, 1)


def order_update_stream(recorder: Recorder, credentials: BrokerCredentials, **options):
    return AlpacaOrderUpdateStream(
        recorder.on_item, recorder.on_status, credentials, reconnect_min_backoff=0.05, **options
    )


@pytest.mark.asyncio
async def test_fill_arrives_as_an_order_update(
    fake_trading_stream: FakeTradingStream, fake_alpaca: FakeAlpacaREST, alpaca_credentials
):
    placed = fake_alpaca.add_order(qty=3, type="limit", limit_price=150, time_in_force="gtc")
    filled = fake_alpaca.fill(placed["id"], "149.97")
    recorder = Recorder()
    stream = order_update_stream(recorder, alpaca_credentials)
    async with running(stream):
        await eventually(lambda: any(s.listening for s in fake_trading_stream.connections))
        assert fake_trading_stream.received == [
            {
                "action": "authenticate",
                "data": {
                    "key_id": alpaca_credentials.key_id,
                    "secret_key": alpaca_credentials.secret,
                },
            },
            {"action": "listen", "data": {"streams": ["trade_updates"]}},
        ]
        fake_trading_stream.push_trade_update(
            "fill", filled, price="149.97", qty="3", position_qty="3"
        )
        await eventually(lambda: recorder.items)
    (update,) = recorder.items
    assert isinstance(update, OrderUpdate)
    assert (update.event, update.price, update.qty, update.position_qty) == (
        "fill",
        Decimal("149.97"),
        Decimal("3"),
        Decimal("3"),
    )
    assert update.order.id == placed["id"]
    assert (update.order.status, update.order.filled_qty) == ("filled", Decimal("3"))
    assert update.order.filled_avg_price == Decimal("149.97")
    assert update.timestamp.tzinfo == UTC
    assert recorder.states() == ["up", "down"]


@pytest.mark.asyncio
async def test_documented_fill_frame(fake_trading_stream, alpaca_credentials):
    documented = load_fixture("trade_update_fill.json")["data"]
    recorder = Recorder()
    stream = order_update_stream(recorder, alpaca_credentials)
    async with running(stream):
        await eventually(lambda: any(s.listening for s in fake_trading_stream.connections))
        extra = {k: documented[k] for k in ("price", "qty", "position_qty", "timestamp")}
        fake_trading_stream.push_trade_update("fill", documented["order"], **extra)
        await eventually(lambda: recorder.items)
    update = recorder.items[0]
    assert update.order.order_class == "simple"  # Alpaca sent ""
    assert update.qty == Decimal("1790.86") and update.position_qty == Decimal("0")
    assert update.price == Decimal("105.8988475")
    assert update.timestamp == datetime(2022, 4, 19, 17, 45, 5, 24916, tzinfo=UTC)
    assert update.order.created_at == datetime(2022, 4, 19, 17, 45, 4, 981350, tzinfo=UTC)


@pytest.mark.asyncio
async def test_trading_stream_refused_auth_is_down(fake_trading_stream, alpaca_credentials):
    fake_trading_stream.auth_mode = "refuse"
    recorder = Recorder()
    stream = order_update_stream(recorder, alpaca_credentials)
    async with running(stream):
        await eventually(lambda: recorder.statuses)
    assert recorder.states() == ["down"]
    assert "failed to authenticate" in recorder.statuses[0][1]


@pytest.mark.asyncio
async def test_trading_stream_reconnects(fake_trading_stream, fake_alpaca, alpaca_credentials):
    recorder = Recorder()
    stream = order_update_stream(recorder, alpaca_credentials, auth_timeout=1)
    async with running(stream):
        await eventually(lambda: any(s.listening for s in fake_trading_stream.connections))
        fake_trading_stream.drop()
        await eventually(lambda: recorder.states() == ["up", "down", "up"])
        await eventually(lambda: any(s.listening for s in fake_trading_stream.connections))
        order = fake_alpaca.add_order()
        fake_trading_stream.push_trade_update("new", order)
        await eventually(lambda: recorder.items)
    assert recorder.items[0].event == "new" and recorder.items[0].price is None


@pytest.mark.asyncio
async def test_every_event_arrives_with_its_own_execution_data(
    fake_trading_stream, fake_alpaca, alpaca_credentials
):
    placed = fake_alpaca.add_order(qty=10, type="limit", limit_price=150, time_in_force="gtc")
    partial = fake_alpaca.execute(placed["id"], "4", "149.123456789012345678")
    recorder = Recorder()
    stream = order_update_stream(recorder, alpaca_credentials)
    async with running(stream):
        await eventually(lambda: any(s.listening for s in fake_trading_stream.connections))
        fake_trading_stream.push_trade_update(
            "partial_fill",
            partial,
            price="149.123456789012345678",
            qty="4",
            execution_id="not-a-uuid:1",
            timestamp="2026-01-01T00:00:00.002000999Z",
        )
        fake_trading_stream.push_trade_update(
            "order_replace_rejected", partial, reason="order is partially filled"
        )
        for event in ("pending_new", "calculated", "suspended", "done_for_day", "stopped"):
            fake_trading_stream.push_trade_update(event, fake_alpaca.change(placed["id"]))
        await eventually(lambda: len(recorder.items) == 7)
    execution, refusal, *others = recorder.items
    # Alpaca's decimal string to the last digit (a float would stop at about 15).
    assert execution.price == Decimal("149.123456789012345678")
    assert (execution.qty, execution.execution_id, execution.is_execution) == (
        Decimal("4"),
        "not-a-uuid:1",
        True,
    )
    assert execution.timestamp == datetime(2026, 1, 1, 0, 0, 0, 2000, tzinfo=UTC)
    assert (refusal.event, refusal.reason, refusal.is_execution) == (
        "order_replace_rejected",
        "order is partially filled",
        False,
    )
    assert refusal.order.status == "partially_filled"
    assert [u.event for u in others] == [
        "pending_new",
        "calculated",
        "suspended",
        "done_for_day",
        "stopped",
    ]
