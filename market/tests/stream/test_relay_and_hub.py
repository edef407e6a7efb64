"""The relay's per-connection conflation and limits, and the hub's upstream handling."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from datetime import UTC, datetime
from decimal import Decimal

from market.stream import hub as hub_module
from market.stream.hub import Hub, upstream_factory
from market.stream.messages import envelope, market_envelope, market_message
from market.stream.relay import Connection, Relay
from market.stream.transport import SUBSCRIBED, MemoryTransport, batch, open_batch
from tradedesk.broker.base import MarketDataStream
from tradedesk.broker.types import Bar, Quote, Trade

AT = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def quote(symbol: str, bid: str) -> str:
    price = Decimal(bid)
    return envelope(
        market_message(
            Quote(symbol, price, Decimal(100), price + Decimal("0.01"), Decimal(200), AT)
        )
    )


def trade(symbol: str, size: int) -> str:
    return envelope(market_message(Trade(symbol, Decimal("10.00"), Decimal(size), AT)))


def test_the_hubs_direct_envelope_is_the_encoders_text_for_every_kind():
    at = datetime(2026, 3, 2, 15, 0, 1, 250_000, tzinfo=UTC)
    price, odd = Decimal("0.0042"), Decimal("1E+2")  # a sub-penny price; a size as Decimal keeps it
    items = [
        Quote("AAPL", price, odd, Decimal("190.55"), Decimal(300), at),
        Trade("BRK.B", Decimal("410.10"), Decimal("12.5"), at),
        Quote('A"\\\u00e9\n', price, odd, price, odd, at),  # escaped as the encoder would
        Bar("SPY", at, price, price, price, price, odd),
    ]
    for item in items:
        assert market_envelope(item) == envelope(market_message(item))


class Client:
    """A connection's far end: records frames; `stalled` makes sending hang like a dead peer."""

    def __init__(self, *, stalled: bool = False):
        self.frames: list[list[dict]] = []
        self.closed_with: list[int] = []
        self.stalled = stalled
        self.arrived = asyncio.Event()

    async def send(self, text: str) -> None:
        self.frames.append(json.loads(text))
        self.arrived.set()
        if self.stalled:
            await asyncio.Event().wait()

    async def close(self, code: int) -> None:
        self.closed_with.append(code)

    async def next_frame(self) -> list[dict]:
        await asyncio.wait_for(self.arrived.wait(), 3)
        self.arrived.clear()
        return self.frames[-1]


def connect(relay: Relay, client: Client, symbols: set[str], **limits) -> Connection:
    options = {"flush_s": 0.01, "queue_limit": 100, "slow_close_s": 60} | limits
    connection = Connection(
        client.send, client.close, streams={"quotes", "trades", "bars"}, **options
    )
    relay.attach(connection)
    relay.subscribe(connection, symbols)
    connection.start()
    return connection


async def test_quotes_conflate_to_the_latest_per_symbol_and_every_trade_is_kept():
    relay = Relay(MemoryTransport())
    client = Client()
    connection = connect(relay, client, {"AAPL", "MSFT"})
    for payload in [
        quote("AAPL", "100.00"),
        trade("AAPL", 1),
        quote("AAPL", "100.50"),
        quote("MSFT", "400.00"),
        trade("AAPL", 2),
        quote("AAPL", "101.00"),
        trade("SPY", 9),  # nobody here wants SPY
        trade("MSFT", 3),
    ]:
        relay.dispatch(payload)
    first = await client.next_frame()
    assert [(m["type"], m.get("size"), m.get("bid_price")) for m in first] == [
        ("trade", "1", None),
        ("trade", "2", None),
        ("trade", "3", None),
        ("quote", None, "101.00"),
        ("quote", None, "400.00"),
    ]
    await connection.stop()


async def test_a_stalled_client_loses_its_oldest_trades_is_told_and_others_are_unaffected():
    relay = Relay(MemoryTransport())
    slow, fast = Client(stalled=True), Client()
    slow_connection = connect(relay, slow, {"AAPL"}, queue_limit=3)
    fast_connection = connect(relay, fast, {"AAPL"})

    relay.dispatch(trade("AAPL", 0))
    assert [m["size"] for m in await slow.next_frame()] == ["0"]  # now stuck in send
    await fast.next_frame()
    for size in range(1, 8):
        relay.dispatch(trade("AAPL", size))
        await asyncio.sleep(0)
    # The fast client got everything, at its own pace.
    got = []
    while len(got) < 7:
        got += [m["size"] for m in await fast.next_frame()]
    assert got == [str(size) for size in range(1, 8)]

    # The stalled one kept the newest three and will learn that four were dropped.
    assert slow_connection.take()[0] == json.dumps(
        {
            "type": "status",
            "state": "lagging",
            "detail": "this connection reads too slowly; its oldest trades and bars were dropped",
            "dropped": 4,
        },
        separators=(",", ":"),
    )
    assert slow.closed_with == []
    await slow_connection.stop()
    await fast_connection.stop()


async def test_a_client_over_its_limit_for_too_long_is_closed_with_1013():
    relay = Relay(MemoryTransport())
    slow = Client(stalled=True)
    connection = connect(relay, slow, {"AAPL"}, queue_limit=2, slow_close_s=0)
    relay.dispatch(trade("AAPL", 0))
    await slow.next_frame()
    for size in range(1, 6):
        relay.dispatch(trade("AAPL", size))
    await asyncio.sleep(0)
    assert slow.closed_with == [1013]
    assert connection.closed
    await connection.stop()


async def test_status_goes_to_everyone_and_a_newcomer_learns_the_feed_is_down():
    relay = Relay(MemoryTransport())
    client = Client()
    connect(relay, client, set())
    relay.dispatch(envelope({"type": "status", "state": "down", "detail": "upstream failed"}))
    assert (await client.next_frame())[0]["state"] == "down"
    newcomer = Client()
    connect(relay, newcomer, set())
    assert (await newcomer.next_frame())[0]["state"] == "down"


class FlakyUpstream(MarketDataStream):
    """Fails on its first run; on the second it sends one quote per subscribed symbol."""

    def __init__(self, on_data, on_status, on_refused=None):
        super().__init__(on_data, on_status, on_refused)
        self.runs = 0
        self.subscriptions: list[set[str]] = []
        self.stopped = asyncio.Event()

    async def set_symbols(self, symbols: set[str]) -> None:
        self.subscriptions.append(set(symbols))

    async def stop(self) -> None:
        self.stopped.set()

    async def run(self) -> None:
        self.runs += 1
        if self.runs == 1:
            raise ConnectionError("connection reset by peer")
        await self.on_status("up", "connected")
        for symbol in sorted(self.subscriptions[-1]):
            price = Decimal("10.00")
            await self.on_data(Quote(symbol, price, Decimal(1), price, Decimal(1), AT))
        await self.stopped.wait()


def collect(transport: MemoryTransport) -> tuple[list[dict], asyncio.Task]:
    """Everything the hub publishes from now on, decoded."""
    received: list[dict] = []

    async def consume() -> None:
        async for payload in transport.messages():
            if payload != SUBSCRIBED:
                received.extend(json.loads(body) for _, _, body in open_batch(payload))

    return received, asyncio.create_task(consume())


async def until(condition) -> None:
    async with asyncio.timeout(3):
        while not condition():
            await asyncio.sleep(0.01)


async def test_the_hub_reports_an_upstream_drop_reconnects_and_resubscribes(monkeypatch):
    monkeypatch.setattr(hub_module, "BACKOFF_FIRST_S", 0)
    transport = MemoryTransport()
    await transport.set_interest("web-1", {"AAPL"})
    messages, collector = collect(transport)
    await asyncio.sleep(0)
    hub = Hub(transport, FlakyUpstream)
    running = asyncio.create_task(hub.run())

    await until(lambda: len(messages) >= 3)
    assert [(m["type"], m.get("state")) for m in messages] == [
        ("status", "down"),
        ("status", "up"),
        ("quote", None),
    ]
    assert messages[2]["symbol"] == "AAPL"
    assert hub.upstream.runs == 2
    assert hub.upstream.subscriptions[-1] == {"AAPL"}
    for task in (running, collector):
        task.cancel()
    await asyncio.gather(running, collector, return_exceptions=True)


async def test_the_hub_subscribes_to_the_union_and_releases_what_nobody_wants():
    transport = MemoryTransport()
    hub = Hub(transport, FlakyUpstream)
    following = asyncio.create_task(hub._follow_interest())

    async def upstream_settles_on(symbols: set[str]) -> None:
        await until(lambda: hub.upstream.subscriptions[-1:] == [symbols])

    await transport.set_interest("web-1", {"AAPL", "MSFT"})
    await transport.set_interest("web-2", {"MSFT", "SPY"})
    await upstream_settles_on({"AAPL", "MSFT", "SPY"})
    await transport.set_interest("web-2", set())
    await upstream_settles_on({"AAPL", "MSFT"})
    await transport.drop_interest("web-1")
    await upstream_settles_on(set())
    following.cancel()
    await asyncio.gather(following, return_exceptions=True)


async def test_stopping_the_hub_ends_a_fixed_rate_feed_it_is_publishing():
    """What runstream does on SIGTERM (a cancellation alone was seen to be lost in this loop)."""
    transport = MemoryTransport()
    await transport.set_interest("web-1", {"AAPL", "MSFT"})
    messages, collector = collect(transport)
    hub = Hub(transport, upstream_factory(quotes_per_second=1000, trades_per_second=100))
    running = asyncio.create_task(hub.run())
    await until(lambda: any(m["type"] == "trade" for m in messages))
    await hub.stop()
    async with asyncio.timeout(3):
        await running
    collector.cancel()
    await asyncio.gather(collector, return_exceptions=True)


class BurstUpstream(MarketDataStream):
    """Delivers `bursts` of quotes, each burst without yielding (like a tick or an Alpaca frame)."""

    def __init__(self, on_data, on_status, bursts: list[list[str]]):
        super().__init__(on_data, on_status)
        self.bursts = bursts
        self.stopped = asyncio.Event()

    async def set_symbols(self, symbols: set[str]) -> None:
        pass

    async def stop(self) -> None:
        self.stopped.set()

    async def run(self) -> None:
        for burst in self.bursts:
            for symbol in burst:
                price = Decimal("10.00")
                await self.on_data(Quote(symbol, price, Decimal(1), price, Decimal(1), AT))
            await asyncio.sleep(self.pause_s)  # between bursts
        await self.stopped.wait()

    pause_s = 2 * hub_module.PUBLISH_EVERY_S  # long enough for each burst's publish to go out


class RecordingTransport(MemoryTransport):
    """Keeps every published payload; fails the publishes it is told to."""

    def __init__(self, failures: int = 0):
        super().__init__()
        self.payloads: list[str] = []
        self.failures = failures

    async def publish(self, payload: str) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("Redis went away")
        self.payloads.append(payload)
        await super().publish(payload)


async def test_the_hub_publishes_each_upstream_burst_once_as_a_batch_in_order():
    transport = RecordingTransport()
    bursts = [["AAPL", "MSFT", "SPY"], ["AAPL"], ["MSFT", "AAPL"]]
    hub = Hub(transport, lambda on_data, on_status, _: BurstUpstream(on_data, on_status, bursts))
    running = asyncio.create_task(hub._run_upstream())

    await until(lambda: len(transport.payloads) == 3)
    published = [[symbol for _, symbol, _ in open_batch(p)] for p in transport.payloads]
    assert published == bursts  # one payload per burst, nothing merged across bursts or lost
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


async def test_the_hub_publishes_bursts_closer_than_its_interval_together_in_order():
    transport = RecordingTransport()
    bursts = [["AAPL"], ["MSFT", "SPY"], ["AAPL"], ["QQQ"]]

    class CloseBursts(BurstUpstream):
        pause_s = 0.001  # a tenth of the publish interval

    hub = Hub(transport, lambda on_data, on_status, _: CloseBursts(on_data, on_status, bursts))
    running = asyncio.create_task(hub._run_upstream())

    await until(lambda: sum(p.count("\n") + 1 for p in transport.payloads) == 5)
    published = [symbol for p in transport.payloads for _, symbol, _ in open_batch(p)]
    assert published == ["AAPL", "MSFT", "SPY", "AAPL", "QQQ"]  # all of it, in order
    # The first burst goes at once; what follows within the interval waits for one publish.
    assert [symbol for _, symbol, _ in open_batch(transport.payloads[0])] == ["AAPL"]
    assert len(transport.payloads) < len(bursts)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


async def test_a_relay_hands_each_message_of_a_batch_to_those_who_want_it():
    relay = Relay(MemoryTransport())
    aapl, msft = Client(), Client()
    aapl_connection = connect(relay, aapl, {"AAPL"})
    msft_connection = connect(relay, msft, {"MSFT"})
    relay.dispatch(
        batch([trade("AAPL", 1), trade("MSFT", 2), quote("MSFT", "400.00"), trade("AAPL", 3)])
    )
    assert [(m["type"], m.get("size")) for m in await aapl.next_frame()] == [
        ("trade", "1"),
        ("trade", "3"),
    ]
    assert [(m["type"], m["symbol"]) for m in await msft.next_frame()] == [
        ("trade", "MSFT"),
        ("quote", "MSFT"),
    ]
    await aapl_connection.stop()
    await msft_connection.stop()


async def test_a_failed_publish_is_dropped_and_the_hub_keeps_publishing(caplog):
    transport = RecordingTransport(failures=2)
    bursts = [["AAPL"], ["MSFT"], ["SPY"]]
    hub = Hub(transport, lambda on_data, on_status, _: BurstUpstream(on_data, on_status, bursts))
    running = asyncio.create_task(hub._run_upstream())

    await until(lambda: len(transport.payloads) == 1)
    assert [symbol for _, symbol, _ in open_batch(transport.payloads[0])] == ["SPY"]
    # One warning for the outage, not one per lost batch.
    assert [r.getMessage() for r in caplog.records if "could not publish" in r.getMessage()] == [
        "could not publish market data (Redis went away); dropping it"
    ]
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


def statuses(client: Client) -> list[dict]:
    return [m for frame in client.frames for m in frame if m["type"] == "status"]


async def test_a_process_that_falls_behind_widens_its_frames_says_so_and_queues_stay_bounded():
    """Overload: turns that run late stretch the flush window step by step (to 8x at most),
    clients are told `lagging` with the window, queues stay within their limit; on time
    again, the window shrinks back and clients are told the server caught up."""
    relay = Relay(MemoryTransport(), flush_s=0.02)
    client = Client()
    connection = connect(relay, client, {"AAPL"}, flush_s=0.02, queue_limit=5)
    relay.dispatch(quote("AAPL", "100.00"))
    await client.next_frame()

    for stall in range(8):
        relay.dispatch(quote("AAPL", f"{101 + stall}.00"))  # its turn is a window away
        for size in range(50):
            relay.dispatch(trade("AAPL", size))
        assert len(connection._queue) <= 5  # bounded however far behind the process is
        # The process is busy elsewhere: the turn runs 50 ms (2.5 windows) late, however wide
        # the window.
        time.sleep(0.02 * relay.scheduler.stretch + 0.05)
        await client.next_frame()
    windows = [m["flush_ms"] for m in statuses(client) if "flush_ms" in m]
    assert windows == [30, 45, 68, 101, 152, 160]  # x1.5 a late turn, never past 8x
    assert all(m["state"] == "lagging" for m in statuses(client) if "flush_ms" in m)
    assert relay.scheduler.stretch == 8.0

    # While stretched, frames are further apart (the window shrinks a step each turn on time).
    sent = []
    for price in range(200, 203):
        relay.dispatch(quote("AAPL", f"{price}.00"))
        await client.next_frame()
        sent.append(asyncio.get_running_loop().time())
    assert min(b - a for a, b in itertools.pairwise(sent)) >= 0.06

    # On time again: back to the configured window, and clients are told.
    async with asyncio.timeout(10):
        while relay.scheduler.stretch > 1.0:
            relay.dispatch(quote("AAPL", "300.00"))
            await client.next_frame()
    assert statuses(client)[-1]["state"] == "up"
    assert "caught up" in statuses(client)[-1]["detail"]
    await connection.stop()
