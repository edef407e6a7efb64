"""The stream's metrics move with its connections: opened and closed, lagging, closed with
1013; and the hub's status record counts its upstream reconnects."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from market.stream import hub as hub_module
from market.stream.hub import Hub, feed_status
from market.stream.relay import Relay
from market.stream.transport import MemoryTransport
from market.tests.stream.test_relay_and_hub import Client, FlakyUpstream, connect, trade, until


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_open_connections_are_counted_until_they_close():
    relay = Relay(MemoryTransport())
    before = value("tradedesk_stream_connections")
    connections = [connect(relay, Client(), {"AAPL"}) for _ in range(3)]
    assert value("tradedesk_stream_connections") == before + 3
    relay.detach(connections[0])
    relay.detach(connections[0])  # a second detach (a failed set-up's) counts nothing
    assert value("tradedesk_stream_connections") == before + 2
    for connection in connections[1:]:
        relay.detach(connection)
        await connection.stop()
    assert value("tradedesk_stream_connections") == before


async def test_a_slow_client_is_counted_lagging_then_closed_with_1013():
    relay = Relay(MemoryTransport())
    lagging = value("tradedesk_stream_lagging_total", reason="slow_client")
    closes = value("tradedesk_stream_slow_closes_total")

    slow = Client(stalled=True)
    connection = connect(relay, slow, {"AAPL"}, queue_limit=2, slow_close_s=60)
    relay.dispatch(trade("AAPL", 0))
    await slow.next_frame()  # stuck in send from now on
    for size in range(1, 6):
        relay.dispatch(trade("AAPL", size))
    connection.take()  # the frame it would get: `lagging`, with what was dropped
    assert value("tradedesk_stream_lagging_total", reason="slow_client") == lagging + 1
    assert value("tradedesk_stream_slow_closes_total") == closes

    connection.slow_close_s = 0
    for size in range(6, 10):
        relay.dispatch(trade("AAPL", size))
    await asyncio.sleep(0)
    assert slow.closed_with == [1013]
    assert value("tradedesk_stream_slow_closes_total") == closes + 1
    await connection.stop()


async def test_a_process_behind_counts_its_lagging_notice():
    relay = Relay(MemoryTransport())
    before = value("tradedesk_stream_lagging_total", reason="server_behind")
    relay.tell_lagging(120)
    assert value("tradedesk_stream_lagging_total", reason="server_behind") == before + 1


async def test_the_hubs_record_counts_its_upstream_reconnects(monkeypatch):
    monkeypatch.setattr(hub_module, "BACKOFF_FIRST_S", 0)
    transport = MemoryTransport()
    await transport.set_interest("web-1", {"AAPL"})
    hub = Hub(transport, FlakyUpstream)  # fails once, then is up
    running = asyncio.create_task(hub.run())
    await until(lambda: hub.upstream.runs == 2 and (feed_status() or {}).get("state") == "up")
    assert feed_status()["reconnects"] == 1
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
