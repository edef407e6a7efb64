"""The live stream under load: the desk's hub + relay on daphne vs a bare websockets broadcast.

    REDIS_URL=redis://127.0.0.1:6379/0 python bench/stream.py [--clients 500] [--seconds 20]

Both servers are fed by the same hub (`manage.py runstream` at fixed quote and trade rates,
publishing to Redis). Each client subscribes to `--per-client` of `--symbols` symbols. Prints,
per server: latest-quote staleness p50/p99 (an upstream quote's time until the client holds that
quote or a newer one for the symbol), trades delivered, frames/s, and the server process's CPU.
Not run: the naive Channels group_send-per-consumer path (see the README's stream section).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA_CHANNEL = "tradedesk:stream:data"  # market.transport.DATA_CHANNEL (no Django import here)
SETUP = """
from django.core.management import call_command
from rest_framework_simplejwt.tokens import AccessToken
from accounts.services import register_user
call_command("migrate", verbosity=0)
print(AccessToken.for_user(register_user(username="bench", password="s3cret-Passw0rd!")))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


# --- the bare broadcast server (a subprocess) -------------------------------------------------
async def bare_server(port: int, redis_url: str) -> None:
    import redis.asyncio as redis
    import websockets

    by_symbol: dict[str, set] = defaultdict(set)

    async def handler(connection) -> None:
        symbols = parse_qs(urlsplit(connection.request.path).query)["symbols"][0].split(",")
        for symbol in symbols:
            by_symbol[symbol].add(connection)
        try:
            await connection.wait_closed()
        finally:
            for symbol in symbols:
                by_symbol[symbol].discard(connection)

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(DATA_CHANNEL)
    async with websockets.serve(handler, "127.0.0.1", port):
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            _kind, symbol, body = message["data"].split("|", 2)
            websockets.broadcast(by_symbol.get(symbol, ()), f"[{body}]")


# --- the clients and the upstream observer ----------------------------------------------------
class Observed:
    def __init__(self) -> None:
        self.upstream_quotes: dict[str, list[float]] = defaultdict(list)
        self.upstream_trades: dict[str, list[float]] = defaultdict(list)
        self.frames = 0
        self.measuring = False
        self.window = (0.0, 0.0)


async def observe_upstream(redis_url: str, observed: Observed) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(DATA_CHANNEL)
    while True:
        message = await pubsub.get_message(timeout=None)
        if message is None:
            continue
        kind, symbol, body = message["data"].split("|", 2)
        if kind == "quote":
            observed.upstream_quotes[symbol].append(timestamp(json.loads(body)["timestamp"]))
        elif kind == "trade":
            observed.upstream_trades[symbol].append(timestamp(json.loads(body)["timestamp"]))


async def run_client(url: str, symbols: list[str], observed: Observed, ready: list) -> dict:
    import websockets

    quotes: dict[str, list[tuple[float, float]]] = defaultdict(list)
    trades: list[float] = []
    for _ in range(100):
        try:
            connection = await websockets.connect(url, max_queue=None, ping_interval=None)
            break
        except OSError:
            await asyncio.sleep(0.2)
    ready.append(1)
    try:
        async for text in connection:
            received = time.time()
            observed.frames += observed.measuring
            for message in json.loads(text):
                if message["type"] == "quote":
                    quotes[message["symbol"]].append((timestamp(message["timestamp"]), received))
                elif message["type"] == "trade":
                    trades.append(timestamp(message["timestamp"]))
    except (asyncio.CancelledError, websockets.ConnectionClosed):
        pass
    return {"symbols": symbols, "quotes": quotes, "trades": trades}


def within(times, window: tuple[float, float]) -> list[float]:
    return [t for t in times if window[0] <= t <= window[1]]


def staleness(observed: Observed, results: list[dict], end: float) -> np.ndarray:
    """Per client and subscribed symbol, every upstream quote sent inside the window."""
    samples = []
    for result in results:
        for symbol in result["symbols"]:
            upstream = np.array(within(observed.upstream_quotes.get(symbol, []), observed.window))
            got = result["quotes"].get(symbol, [])
            held = np.array([t for t, _ in got])
            at = np.array([r for _, r in got])
            index = np.searchsorted(held, upstream, side="left")
            late = np.full(upstream.shape, end) - upstream  # never delivered: stale to the end
            delivered = index < len(held)
            late[delivered] = at[index[delivered]] - upstream[delivered]
            samples.append(late)
    return np.concatenate(samples) if samples else np.array([0.0])


async def measure(name: str, url_for, pid: int, args, redis_url: str) -> None:
    symbols = SYMBOLS[: args.symbols]
    observed = Observed()
    observer = asyncio.create_task(observe_upstream(redis_url, observed))
    ready: list = []
    clients = []
    for i in range(args.clients):
        chosen = [symbols[(i * 7 + k) % len(symbols)] for k in range(args.per_client)]
        clients.append(asyncio.create_task(run_client(url_for(chosen), chosen, observed, ready)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    while len(ready) < args.clients:
        await asyncio.sleep(0.1)
    await asyncio.sleep(3)  # subscriptions reach the hub, the feed settles
    cpu_before, started = cpu_seconds(pid), time.time()
    observed.measuring = True
    await asyncio.sleep(args.seconds)
    observed.measuring = False
    cpu = (cpu_seconds(pid) - cpu_before) / (time.time() - started)
    end = time.time()
    observed.window = (started, end)
    await asyncio.sleep(1)  # what was sent inside the window arrives (or is counted missing)
    end = time.time()
    for client in clients:
        client.cancel()
    results = await asyncio.gather(*clients)
    observer.cancel()

    stale = staleness(observed, results, end) * 1000
    expected = sum(
        len(within(observed.upstream_trades.get(s, []), observed.window))
        for r in results
        for s in r["symbols"]
    )
    delivered = sum(len(within(r["trades"], observed.window)) for r in results)
    trades_pct = 100 * delivered / max(expected, 1)
    print(
        f"{name:<22} staleness p50 {np.percentile(stale, 50):7.1f} ms  "
        f"p99 {np.percentile(stale, 99):7.1f} ms  trades {trades_pct:6.2f}%  "
        f"frames/s {observed.frames / args.seconds:8.0f}  server CPU {100 * cpu:5.1f}% of a core",
        flush=True,
    )


SYMBOLS: list[str] = []  # the paper exchange's universe, filled in main()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--per-client", type=int, default=10)
    parser.add_argument("--quotes", type=float, default=1000)
    parser.add_argument("--trades", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        sys.exit("Set REDIS_URL: the benchmark measures the production (Redis) layout.")
    if args.bare_server:
        asyncio.run(bare_server(args.bare_server, redis_url))
        return

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradedesk.settings")
    import django

    django.setup()
    from tradedesk.broker.sim.universe import REFERENCE_PRICES

    SYMBOLS[:] = sorted(REFERENCE_PRICES)
    args.symbols = min(args.symbols, len(SYMBOLS))

    work = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    env = os.environ | {
        "DATABASE_URL": f"sqlite:///{work / 'bench.sqlite3'}",
        "MARKET_DATA_PROVIDER": "sim",
    }
    python, manage = sys.executable, str(ROOT / "manage.py")
    token = subprocess.run(
        [python, manage, "shell", "-c", SETUP], env=env, cwd=ROOT, capture_output=True,
        text=True, check=True,
    ).stdout.split()[-1]  # fmt: skip
    desk_port, bare_port = free_port(), free_port()
    rates = ["--quotes-per-second", str(args.quotes), "--trades-per-second", str(args.trades)]
    processes = {
        "hub": subprocess.Popen([python, manage, "runstream", *rates], env=env, cwd=ROOT),
        "daphne": subprocess.Popen(
            [
                python,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(desk_port),
                "tradedesk.asgi:application",
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        "bare": subprocess.Popen([python, __file__, "--bare-server", str(bare_port)], env=env),
    }
    print(
        f"{args.clients} clients x {args.per_client} of {args.symbols} symbols; upstream "
        f"{args.quotes:.0f} quotes/s + {args.trades:.0f} trades/s for {args.seconds:.0f} s",
        flush=True,
    )
    try:
        desk = f"ws://127.0.0.1:{desk_port}/api/v1/broker/stream?token={token}&streams=quotes,trades&symbols="
        asyncio.run(
            measure(
                "desk (relay, daphne)",
                lambda chosen: desk + ",".join(chosen),
                processes["daphne"].pid,
                args,
                redis_url,
            )
        )
        bare = f"ws://127.0.0.1:{bare_port}/?symbols="
        asyncio.run(
            measure(
                "bare websockets",
                lambda chosen: bare + ",".join(chosen),
                processes["bare"].pid,
                args,
                redis_url,
            )
        )
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
