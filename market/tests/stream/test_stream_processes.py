"""Production layout: the hub (`runstream`) and daphne in separate processes, over Redis."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

import pytest

from conftest import require_service

from .processes import (
    MANAGE,
    PYTHON,
    ROOT,
    connect_when_listening,
    daphne,
    free_port,
    stop,
    trader_token,
)


async def quotes_over_the_wire(url: str, symbols: set[str]) -> list[dict]:
    client = await connect_when_listening(url)
    seen: list[dict] = []
    async with client, asyncio.timeout(15):
        while symbols - {m["symbol"] for m in seen if m["type"] == "quote"}:
            seen += json.loads(await client.recv())
    return seen


@pytest.mark.services
def test_a_client_of_daphne_receives_quotes_from_a_hub_in_another_process(tmp_path, settings):
    require_service("Redis", bool(settings.REDIS_URL))
    env = os.environ | {
        "REDIS_URL": settings.REDIS_URL,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'stream.sqlite3'}",
        "MARKET_DATA_PROVIDER": "sim",
    }
    token = trader_token(env)
    port = free_port()
    hub = subprocess.Popen([PYTHON, MANAGE, "runstream"], env=env, cwd=ROOT)
    web = daphne(env, port, stderr=subprocess.DEVNULL)
    second_hub = None
    try:
        url = f"ws://127.0.0.1:{port}/api/v1/broker/stream?token={token}&symbols=AAPL,MSFT"
        seen = asyncio.run(quotes_over_the_wire(url, {"AAPL", "MSFT"}))
        assert seen[0] == {
            "type": "subscription",
            "symbols": ["AAPL", "MSFT"],
            "streams": ["quotes"],
        }
        assert {m["type"] for m in seen} <= {"subscription", "status", "quote"}

        # Exactly one hub per deployment: a second one waits for the lock.
        second_hub = subprocess.Popen(
            [PYTHON, MANAGE, "runstream"], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        assert second_hub.stdout.readline().startswith("Another hub holds the lock")
    finally:
        stop([p for p in (second_hub, web, hub) if p is not None])


@pytest.mark.services
async def test_the_relay_tells_clients_when_its_redis_subscription_was_silently_reestablished(
    settings,
):
    """redis-py reconnects a dropped subscriber by itself; what was published meanwhile is lost."""
    require_service("redis", bool(settings.REDIS_URL))
    from market.stream.relay import Connection, Relay
    from market.stream.transport import RedisTransport

    transport = RedisTransport(settings.REDIS_URL)
    subscribers = []
    make_pubsub = transport.redis.pubsub
    transport.redis.pubsub = lambda **options: (
        subscribers.append(make_pubsub(**options)) or (subscribers[-1])
    )
    relay = Relay(transport)
    frames: list[list[dict]] = []

    async def send(text: str) -> None:
        frames.append(json.loads(text))

    connection = Connection(
        send, send, streams={"quotes"}, flush_s=0.01, queue_limit=10, slow_close_s=60
    )
    relay.attach(connection)
    connection.start()
    running = asyncio.create_task(relay.run())
    async with asyncio.timeout(5):
        while not subscribers or not subscribers[0].subscribed:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the subscription's confirmation has been read
        # Redis drops the relay's subscriber (as it drops one over its output buffer limit).
        host, port = subscribers[0].connection._writer.get_extra_info("sockname")[:2]
        await transport.redis.client_kill(f"{host}:{port}")
        while not any("resubscribed" in m.get("detail", "") for frame in frames for m in frame):
            await asyncio.sleep(0.01)
    statuses = [(m["state"], m["detail"]) for frame in frames for m in frame]
    # Told at once that the relay is down, then that it is back and what it means.
    assert statuses == [
        ("down", "market data relay reconnecting"),
        ("up", "market data relay resubscribed; some messages were missed"),
    ]
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    await connection.stop()
    await transport.close()
