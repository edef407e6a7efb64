"""market.daphne_socket, and slow clients under a real daphne: their socket backs up, so their
queue fills, drops and closes with 1013."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
from functools import partial
from pathlib import Path
from typing import NamedTuple

import pytest
import websockets
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from market.daphne_socket import SendBuffer, close_with_code, watch_send_buffer
from market.relay import Relay
from market.tests.test_relay_and_hub import Client, connect, trade
from market.transport import MemoryTransport

from .processes import daphne, free_port, short_lived_token, stop, trader_token, wait_for_port

CLOSING_SLOW_CLIENT = "closing a stream client that stayed over its queue limit"
SYMBOLS = "AAPL,ABBV,ADBE,AMD,AMZN,AVGO,BA,BAC,COST,CRM,CSCO,CVX,DIA,DIS,GME,GOOGL,GS,HD,IBM,INTC"


class Server(NamedTuple):
    url: str
    token: str
    log_path: Path
    env: dict[str, str]


async def test_without_daphne_nothing_is_known_and_closes_go_through_asgi():
    """Channels' WebsocketCommunicator, another server: no buffer, so nothing changes."""

    async def send(message: dict) -> None:
        pass

    for not_daphne in (send, partial(send, {})):
        assert watch_send_buffer(not_daphne) is None
        assert close_with_code(not_daphne, 1013) is False


async def test_a_backed_up_socket_is_sent_nothing_its_queue_drops_then_drains_in_one_frame():
    relay = Relay(MemoryTransport())
    client, send_buffer = Client(), SendBuffer()
    connection = connect(relay, client, {"AAPL"}, queue_limit=3, send_buffer=send_buffer)
    relay.dispatch(trade("AAPL", 0))
    assert [m["size"] for m in await client.next_frame()] == ["0"]

    send_buffer.pauseProducing()  # Twisted: the write buffer passed its high-water mark
    for size in range(1, 8):
        relay.dispatch(trade("AAPL", size))
        await asyncio.sleep(0.02)  # two flush windows each: none may send
    assert len(client.frames) == 1

    send_buffer.resumeProducing()  # all of it went to the kernel
    lagging, *trades = await client.next_frame()
    assert lagging == {
        "type": "status",
        "state": "lagging",
        "detail": "this connection reads too slowly; its oldest trades and bars were dropped",
        "dropped": 4,
    }
    assert [m["size"] for m in trades] == ["5", "6", "7"]  # the newest, in order
    assert client.closed_with == []
    await connection.stop()


class FakeProtocol:
    """The part of daphne's WebSocketProtocol a SendBuffer answers pings through."""

    STATE_OPEN = 3

    def __init__(self) -> None:
        self.state = self.STATE_OPEN
        self.pongs: list[bytes] = []

    def sendPong(self, payload: bytes) -> None:
        self.pongs.append(payload)


def test_pings_are_answered_at_once_and_only_the_latest_once_a_backed_up_socket_drains():
    protocol, counted = FakeProtocol(), []
    send_buffer = SendBuffer(protocol)
    send_buffer.on_ping = lambda: counted.append(True)
    send_buffer.ping_received(b"1")
    assert protocol.pongs == [b"1"]

    send_buffer.pauseProducing()  # the client stopped reading: pongs would pile up in daphne
    for n in range(2, 1000):
        send_buffer.ping_received(str(n).encode())
    assert protocol.pongs == [b"1"]
    send_buffer.resumeProducing()
    assert protocol.pongs == [b"1", b"999"]  # RFC 6455 5.5.3: the most recent is enough
    assert len(counted) == 999  # every ping was counted by the stream (rate and queue)


async def test_pings_while_the_socket_is_backed_up_count_against_the_queue_until_1013():
    relay = Relay(MemoryTransport())
    client, send_buffer = Client(), SendBuffer()
    connection = connect(
        relay, client, set(), queue_limit=3, slow_close_s=0, send_buffer=send_buffer
    )
    for _ in range(10):
        connection.count_ping()  # reading: each pong goes out at once, nothing waits
    send_buffer.pauseProducing()
    for _ in range(3):
        connection.count_ping()
    await asyncio.sleep(0)
    assert client.closed_with == []
    for _ in range(2):  # over the limit, and still over it: the slow-client close
        connection.count_ping()
    await asyncio.sleep(0)
    assert client.closed_with == [1013]
    await connection.stop()


class StalledClient:
    """A WebSocket client on a bare socket that reads only when told to (websockets' sans-I/O)."""

    def __init__(self, url: str) -> None:
        self.uri = parse_uri(url)
        self.protocol = ClientProtocol(self.uri)
        self.socket = socket.socket()
        # A small receive window, and segments of a real network's size rather than loopback's
        # 64 KiB, which would let the server's kernel grow its send buffer to megabytes.
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1460)
        self.socket.setblocking(False)
        self.received_bytes = 0
        self.messages: list[dict] = []
        self.close_code: int | None = None

    async def open(self) -> None:
        address = (self.uri.host, self.uri.port)
        await asyncio.get_running_loop().sock_connect(self.socket, address)
        self.protocol.send_request(self.protocol.connect())
        await self._send_pending()
        while self.protocol.state is State.CONNECTING:
            await self.read()

    async def read(self) -> bool:
        """One read of the socket: False at its end."""
        data = await asyncio.get_running_loop().sock_recv(self.socket, 65536)
        self.received_bytes += len(data)
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        for event in self.protocol.events_received():
            if not isinstance(event, Frame):  # the handshake's response
                continue
            if event.opcode is Opcode.TEXT:
                self.messages += json.loads(event.data)
            elif event.opcode is Opcode.CLOSE:
                self.close_code = Close.parse(event.data).code
        await self._send_pending()  # the answer to a close
        return bool(data)

    async def _send_pending(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                await asyncio.get_running_loop().sock_sendall(self.socket, data)


async def wait_for_line(log_path, text: str) -> None:
    while text not in log_path.read_text():
        await asyncio.sleep(0.02)


async def count_quotes(client, quotes: list[float]) -> None:
    async for text in client:
        quotes += [
            asyncio.get_running_loop().time() for m in json.loads(text) if m["type"] == "quote"
        ]


@contextlib.contextmanager
def running_daphne(work: Path, slow_close_s: int):
    """A daphne serving the project, with its hub inside (the embedded run) and a fast feed."""
    env = os.environ | {
        "REDIS_URL": "",
        "DATABASE_URL": f"sqlite:///{work / 'stream.sqlite3'}",
        "MARKET_DATA_PROVIDER": "sim",
        "TRADEDESK_SIM_ALWAYS_OPEN": "1",
        "SIM_STREAM_QUOTES_PER_SECOND": "500",
        "SIM_STREAM_TRADES_PER_SECOND": "2000",
        "STREAM_QUEUE_LIMIT": "100",
        "STREAM_SLOW_CLOSE_S": str(slow_close_s),
        "LOG_LEVEL": "INFO",
    }
    token = trader_token(env)
    port = free_port()
    log_path = work / "daphne.log"
    with log_path.open("w") as log:
        process = daphne(env, port, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
        yield Server(f"ws://127.0.0.1:{port}/api/v1/broker/stream", token, log_path, env)
    finally:
        stop([process])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_daphne(tmp_path_factory.mktemp("daphne"), slow_close_s=1) as running:
        yield running


@pytest.fixture(scope="module")
def patient_server(tmp_path_factory):
    with running_daphne(tmp_path_factory.mktemp("patient-daphne"), slow_close_s=600) as running:
        yield running


async def test_daphne_closes_a_client_that_stops_reading_with_1013_and_others_keep_their_quotes(
    server,
):
    stream = f"{server.url}?token={server.token}"
    reader = await websockets.connect(f"{stream}&symbols=AAPL&streams=quotes")
    quotes: list[float] = []  # when each arrived
    counting = asyncio.create_task(count_quotes(reader, quotes))
    stalled = StalledClient(f"{stream}&symbols={SYMBOLS}&streams=trades")
    clock = asyncio.get_running_loop().time
    async with reader, asyncio.timeout(20):
        await stalled.open()
        stalled_at = clock()
        # It reads nothing more: daphne's buffer for it fills, so the relay stops sending, its
        # queue overflows and stays over the limit until the relay closes it.
        await wait_for_line(server.log_path, CLOSING_SLOW_CLIENT)
        closed_at = clock()
        # A slow client is slow to read its close frame too: longer than autobahn's default
        # 1 s close timeout, after which it was reset without ever learning why.
        await asyncio.sleep(2)
        # Now it reads all that daphne still holds for it, up to the close frame.
        with contextlib.suppress(ConnectionResetError):  # daphne ends the closed TCP with a RST
            while await stalled.read():
                pass
        while not any(at > closed_at for at in quotes):
            await asyncio.sleep(0.02)
        counting.cancel()

    assert stalled.close_code == 1013
    assert {"subscription", "trade"} <= {m["type"] for m in stalled.messages}
    # What daphne held for it was bounded: unbounded, it grows by ~250 KB a second.
    assert stalled.received_bytes < 1_000_000
    # The other client's quotes kept coming meanwhile.
    assert any(stalled_at < at < closed_at for at in quotes)


async def test_daphne_refuses_a_bad_token_with_1008(server):
    """autobahn refuses 1008 through ASGI; it used to end as the application's crash, 1011."""
    client = await websockets.connect(f"{server.url}?token=not-a-jwt")
    async with client, asyncio.timeout(10):
        with pytest.raises(websockets.ConnectionClosed):
            await client.recv()
    assert client.close_code == 1008


async def test_daphne_closes_a_stream_with_1008_when_its_token_expires(server):
    """autobahn refuses 1008 through ASGI: before, an expired token's stream kept flowing."""
    token = short_lived_token(server.env, seconds=3)
    client = await websockets.connect(f"{server.url}?token={token}&symbols=AAPL")
    async with client, asyncio.timeout(15):
        first = json.loads(await client.recv())
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await client.recv()
    assert first[0]["type"] == "subscription"
    assert client.close_code == 1008


async def test_a_client_that_reads_again_in_time_is_told_how_many_trades_it_missed(
    patient_server,
):
    stalled = StalledClient(
        f"{patient_server.url}?token={patient_server.token}&symbols={SYMBOLS}&streams=trades"
    )
    await stalled.open()
    async with asyncio.timeout(30):
        # Not reading, long enough for daphne's buffer to fill and the queue to overflow
        # (~1.5 s here); once it reads, the backlog takes milliseconds and then the frame that
        # waited for the socket to drain carries the news. Too short a stall: again, longer.
        for stall_s in (2, 4, 8):
            await asyncio.sleep(stall_s)
            read_from = len(stalled.messages)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3):
                    while not lagging(stalled.messages[read_from:]):
                        await stalled.read()
            if told := lagging(stalled.messages[read_from:]):
                break
    assert told[0]["dropped"] > 0
    assert stalled.close_code is None  # within STREAM_SLOW_CLOSE_S: told, not closed


def lagging(messages: list[dict]) -> list[dict]:
    return [m for m in messages if m["type"] == "status" and m["state"] == "lagging"]


async def test_daphne_closes_a_client_flooding_pings_with_an_error_then_1008(server):
    """One connection sent 473k pings in 12 s and daphne answered every one (autobahn)."""
    client = StalledClient(f"{server.url}?token={server.token}")
    async with asyncio.timeout(15):
        await client.open()
        for n in range(500):
            client.protocol.send_ping(n.to_bytes(4, "big"))
        await client._send_pending()
        with contextlib.suppress(ConnectionResetError):
            while await client.read():
                pass
    assert client.close_code == 1008
    assert [m["code"] for m in client.messages if m["type"] == "error"] == ["rate_limited"]
