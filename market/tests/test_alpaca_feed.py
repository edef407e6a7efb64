"""Alpaca's market-data stream as the desk's clients see it (embedded layout, in process):
a WebSocket client of the desk → relay → hub → the Alpaca adapter (alpaca-py) → the loopback
Alpaca stream. Each fault Alpaca shows gives its `status` (or `error`) frame, then recovers.
The same path across real processes is in test_alpaca_processes.py.
"""

from __future__ import annotations

import asyncio

import pytest

from market.hub import feed_status
from market.relay import process_stream
from tradedesk.broker import market_data_credentials
from tradedesk.broker.alpaca import AlpacaMarketDataStream
from tradedesk.broker.tests.alpaca_fakes import KEY_ID, SECRET, FakeMarketDataStream, load_fixture

from .test_stream_consumer import access_token, frame, messages_until, stream

pytestmark = pytest.mark.django_db(transaction=True)
QUOTE = load_fixture("stream_md_quote.json")


def quote(symbol: str, bid: float, ask: float) -> dict:
    return {**QUOTE, "S": symbol, "bp": bid, "ap": ask}


@pytest.fixture
async def alpaca_feed(settings, fake_md_stream: FakeMarketDataStream):
    settings.REDIS_URL = ""  # the embedded run: the hub lives in this process
    settings.MARKET_DATA_PROVIDER = "alpaca"
    settings.ALPACA_MARKET_DATA_KEY_ID, settings.ALPACA_MARKET_DATA_SECRET = KEY_ID, SECRET
    settings.ALPACA_STREAM_AUTH_TIMEOUT_SECONDS = 0.5
    settings.ALPACA_STREAM_RECONNECT_MIN_SECONDS = 0.05
    yield fake_md_stream
    await process_stream.stop()  # the hub goes before the fake it is connected to


async def desk_client(user, symbols: str = "AAPL"):
    communicator = stream(f"token={access_token(user)}&symbols={symbols}")
    assert (await communicator.connect())[0]
    assert (await frame(communicator))[0]["type"] == "subscription"
    return communicator


async def statuses_until(communicator, state: str) -> list[tuple[str, str]]:
    """(state, detail) of the status messages the client gets, up to one in `state`."""
    seen = await messages_until(
        communicator, lambda m: m["type"] == "status" and m["state"] == state
    )
    return [(m["state"], m["detail"]) for m in seen if m["type"] == "status"]


async def pinned_quote_arrives(fake: FakeMarketDataStream, communicator, bid: float, ask: float):
    """Alpaca sends AAPL at these prices (again and again: the hub may still be subscribing)
    until the client has it. (A short receive timeout would end the communicator's app.)"""

    async def keep_sending() -> None:
        while True:
            await asyncio.to_thread(fake.push, quote("AAPL", bid, ask))
            await asyncio.sleep(0.1)

    sender = asyncio.create_task(keep_sending())
    try:
        seen = await messages_until(
            communicator, lambda m: m["type"] == "quote" and m["bid_price"] == str(bid), 5
        )
    finally:
        sender.cancel()
    pinned = [m for m in seen if m["type"] == "quote" and m["bid_price"] == str(bid)][-1]
    assert (pinned["symbol"], pinned["ask_price"]) == ("AAPL", str(ask))


async def test_quotes_come_from_alpaca(alpaca_feed, trader):
    client = await desk_client(trader)
    assert await statuses_until(client, "up") == [("up", "authenticated")]
    await pinned_quote_arrives(alpaca_feed, client, 101.25, 101.27)
    assert alpaca_feed.connects == 1
    await client.disconnect()


async def test_refused_keys_are_a_down_status_until_alpaca_takes_them(alpaca_feed, trader):
    alpaca_feed.auth_mode = "refuse"
    client = await desk_client(trader)
    assert await statuses_until(client, "down") == [
        ("down", "connect or auth failed: auth failed (402): Alpaca refused the market-data keys")
    ]
    assert feed_status()["state"] == "down"  # what /healthz reports, without asking Alpaca
    alpaca_feed.auth_mode = "ok"
    assert await statuses_until(client, "up") == [("up", "authenticated")]
    await pinned_quote_arrives(alpaca_feed, client, 101.25, 101.27)
    assert feed_status()["state"] == "up"
    await client.disconnect()


async def test_a_second_hub_on_the_same_key_waits_and_takes_over(alpaca_feed, trader):
    alpaca_feed.max_connections = 1

    async def ignore(*args) -> None:
        return None

    # Another hub (another deployment on the same key) holds Alpaca's one connection.
    other_hub = AlpacaMarketDataStream(ignore, ignore, market_data_credentials())
    await other_hub.set_symbols({"SPY"})
    other = asyncio.create_task(other_hub.run())
    try:
        async with asyncio.timeout(3):
            while not alpaca_feed.subscribed({"SPY"}):
                await asyncio.sleep(0.01)
        client = await desk_client(trader)
        [(_, detail)] = await statuses_until(client, "down")
        assert "connection limit exceeded (406)" in detail
        await asyncio.sleep(0.5)
        assert 1 <= len(alpaca_feed.refused_at) <= 5  # backing off, not fighting
        assert alpaca_feed.subscribed({"SPY"})  # the other hub kept its connection
    finally:
        await other_hub.stop()
        await other
    assert await statuses_until(client, "up") == [("up", "authenticated")]
    await pinned_quote_arrives(alpaca_feed, client, 99.5, 99.52)
    await client.disconnect()


async def test_unanswered_auth_is_down_after_the_timeout_then_recovers(alpaca_feed, trader):
    alpaca_feed.auth_mode = "silent"
    client = await desk_client(trader)
    assert await statuses_until(client, "down") == [("down", "not authenticated within 0.5 s")]
    alpaca_feed.auth_mode = "ok"
    assert await statuses_until(client, "up") == [("up", "authenticated")]
    await pinned_quote_arrives(alpaca_feed, client, 101.25, 101.27)
    await client.disconnect()


async def test_a_dropped_connection_is_a_gap_clients_are_told_of(alpaca_feed, trader):
    client = await desk_client(trader)
    await statuses_until(client, "up")
    await pinned_quote_arrives(alpaca_feed, client, 101.25, 101.27)
    alpaca_feed.drop()
    assert await statuses_until(client, "up") == [
        ("down", "disconnected"),
        ("up", "authenticated"),
    ]
    await pinned_quote_arrives(alpaca_feed, client, 102.0, 102.02)  # resubscribed
    assert alpaca_feed.connects == 2
    await client.disconnect()


async def test_a_symbol_alpaca_refuses_is_an_error_for_its_subscribers(alpaca_feed, trader):
    alpaca_feed.symbol_limit = 1
    client = await desk_client(trader)
    await pinned_quote_arrives(alpaca_feed, client, 101.25, 101.27)
    await client.send_json_to({"action": "subscribe", "symbols": ["TSLA"]})
    seen = await messages_until(client, lambda m: m["type"] == "error")
    error = next(m for m in seen if m["type"] == "error")
    assert error["code"] == "symbol_refused" and error["symbol"] == "TSLA"
    assert "symbol limit exceeded (405)" in error["message"]
    # A newcomer asking for it is told with its subscription; AAPL streams on.
    newcomer = stream(f"token={access_token(trader)}&symbols=TSLA")
    assert (await newcomer.connect())[0]
    subscription, refusal = await frame(newcomer)
    assert subscription["symbols"] == ["TSLA"]
    assert refusal == error
    await pinned_quote_arrives(alpaca_feed, client, 101.3, 101.32)
    assert not any(m["type"] == "status" and m["state"] == "down" for m in seen)
    for communicator in (client, newcomer):
        await communicator.disconnect()
