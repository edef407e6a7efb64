"""Live Alpaca market data through the desk's real processes, MARKET_DATA_PROVIDER=alpaca:
the loopback Alpaca data stream (msgpack, as alpaca-py speaks it) → the hub → daphne → desk
WebSocket clients, in the production layout (`manage.py runstream` → Redis → daphne) and the
embedded one (the hub inside daphne). Many clients, exactly one upstream connection, and the
prices the clients see are the fake's.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.request
from pathlib import Path

import pytest

from conftest import require_service
from tradedesk.broker.tests.alpaca_fakes import (
    KEY_ID,
    SECRET,
    FakeAlpacaREST,
    FakeMarketDataStream,
    load_fixture,
)

from .processes import MANAGE, PYTHON, ROOT, connect_when_listening, daphne, free_port, stop
from .processes import trader_token as migrate_and_get_token

CLIENTS = 5
# (bid, ask) the fake sends; the desk's quotes must carry exactly these (as decimal strings).
PINNED = {"AAPL": (101.25, 101.27), "MSFT": (402.15, 402.19)}
QUOTE = load_fixture("stream_md_quote.json")


@pytest.fixture
def fake_alpaca_stream():
    fake = FakeMarketDataStream().start()
    yield fake
    fake.stop()


def alpaca_env(
    tmp_path: Path, fake: FakeMarketDataStream, rest: FakeAlpacaREST, redis_url: str
) -> dict[str, str]:
    import os

    return os.environ | {
        "ALPACA_TRADING_URL": rest.url,  # /healthz's clock probe, and nothing leaves loopback
        "ALPACA_DATA_URL": rest.url,
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'desk.sqlite3'}",
        "MARKET_DATA_PROVIDER": "alpaca",
        "ALPACA_MARKET_DATA_KEY_ID": KEY_ID,
        "ALPACA_MARKET_DATA_SECRET": SECRET,
        "ALPACA_DATA_FEED": "iex",
        "ALPACA_DATA_STREAM_URL": fake.url,
    }


async def clients_get_pinned_quotes(
    url: str, fake: FakeMarketDataStream
) -> tuple[list[dict], list[dict[str, set[str]]]]:
    """CLIENTS desk clients subscribe to PINNED's symbols while the fake sends their quotes.
    Returns, per client, the first quote per symbol carrying the pinned prices, and the fake's
    upstream subscriptions (one per connection) while the clients were all connected."""
    clients = [await connect_when_listening(url) for _ in range(CLIENTS)]

    async def read(client) -> dict[str, dict]:
        pinned: dict[str, dict] = {}
        while set(pinned) != set(PINNED):
            for message in json.loads(await client.recv()):
                if message["type"] == "quote" and message["symbol"] not in pinned:
                    bid, ask = PINNED[message["symbol"]]
                    if message["bid_price"] == str(bid) and message["ask_price"] == str(ask):
                        pinned[message["symbol"]] = message
        return pinned

    async def alpaca_sends_quotes() -> None:
        while True:
            quotes = [{**QUOTE, "S": s, "bp": bid, "ap": ask} for s, (bid, ask) in PINNED.items()]
            await asyncio.to_thread(fake.push, *quotes)
            await asyncio.sleep(0.1)

    sender = asyncio.create_task(alpaca_sends_quotes())
    try:
        async with asyncio.timeout(20):
            seen = await asyncio.gather(*(read(client) for client in clients))
        return seen, fake.subscriptions()
    finally:
        sender.cancel()
        for client in clients:
            await client.close()


def assert_one_upstream_served_everyone(
    fake: FakeMarketDataStream, seen: list[dict], upstream: list[dict[str, set[str]]]
) -> None:
    assert len(seen) == CLIENTS
    for pinned in seen:
        assert {s: (q["bid_price"], q["ask_price"]) for s, q in pinned.items()} == {
            "AAPL": ("101.25", "101.27"),
            "MSFT": ("402.15", "402.19"),
        }
    assert fake.connects == 1  # one upstream connection for all the clients
    wanted = set(PINNED)
    assert upstream == [{"trades": wanted, "quotes": wanted, "bars": wanted}]  # the union, once
    assert fake.received[0] == {"action": "auth", "key": KEY_ID, "secret": SECRET}


def assert_healthz_reports_the_feed_up(port: int, rest: FakeAlpacaREST) -> None:
    """The web process reports the hub's feed state (from another process, in production)
    and probes Alpaca's REST once, however often it is asked."""
    for _ in range(3):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
            body = json.loads(answer.read())
        assert body["checks"]["market_data"] == "ok" and body["status"] == "ok", body
    assert len(rest.requests_to("GET", "/v2/clock")) == 1


def stream_url(port: int, token: str) -> str:
    symbols = ",".join(PINNED)
    return f"ws://127.0.0.1:{port}/api/v1/broker/stream?token={token}&symbols={symbols}"


@pytest.mark.services
def test_production_layout_runstream_redis_daphne(
    tmp_path, settings, fake_alpaca_stream, fake_alpaca
):
    require_service("Redis", bool(settings.REDIS_URL))
    env = alpaca_env(tmp_path, fake_alpaca_stream, fake_alpaca, settings.REDIS_URL)
    token = migrate_and_get_token(env)
    port = free_port()
    logs = [open(tmp_path / name, "w") for name in ("runstream.log", "daphne.log")]  # noqa: SIM115
    hub = subprocess.Popen(
        [PYTHON, MANAGE, "runstream"], env=env, cwd=ROOT, stdout=logs[0], stderr=logs[0]
    )
    web = daphne(env, port, stdout=logs[1], stderr=logs[1])
    try:
        url = stream_url(port, token)
        seen, upstream = asyncio.run(clients_get_pinned_quotes(url, fake_alpaca_stream))
        assert_one_upstream_served_everyone(fake_alpaca_stream, seen, upstream)
        assert hub.poll() is None and web.poll() is None
    finally:
        stop([web, hub])
        for log in logs:
            log.close()


def test_embedded_layout_the_hub_inside_daphne(tmp_path, fake_alpaca_stream, fake_alpaca):
    env = alpaca_env(tmp_path, fake_alpaca_stream, fake_alpaca, redis_url="")
    token = migrate_and_get_token(env)
    port = free_port()
    with open(tmp_path / "daphne.log", "w") as log:
        web = daphne(env, port, stdout=log, stderr=log)
        try:
            url = stream_url(port, token)
            seen, upstream = asyncio.run(clients_get_pinned_quotes(url, fake_alpaca_stream))
            assert_one_upstream_served_everyone(fake_alpaca_stream, seen, upstream)
            assert_healthz_reports_the_feed_up(port, fake_alpaca)
        finally:
            stop([web])
