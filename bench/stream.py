"""The live stream under load: the desk's relay on daphne, the naive Channels path, a bare server.

    REDIS_URL=redis://127.0.0.1:6379/0 python bench/stream.py [--clients 500] [--seconds 20]
        [--servers desk,naive,bare] [--daphnes 1] [--client-processes 2] [--sweep 2000,4000]

All servers are fed by the same hub (`manage.py runstream` at fixed quote and trade rates,
publishing to Redis). Each client subscribes to `--per-client` of `--symbols` symbols; the
clients run in `--client-processes` processes of their own. Prints, per server: latest-quote
staleness p50/p99 (an upstream quote's time until the client holds that quote or a newer one for
the symbol), trades delivered, frames/s, sockets closed early, and the CPU (% of one core) of
each server process, the hub, Redis, the client processes, the upstream observer and the rest of
the machine ("others": work not ours) — they all share this machine's cores — and the
server's CPU per frame delivered (µs) and the hub's per upstream message (µs; the paper feed's
own cost included: `bench/hub.py` separates them); the last line is the desk's over the bare
server's. The
staleness p99 is also given at the clients' sockets (the kernel's receive time): the gap to the
p99 proper is the client processes' own wait for a core.
`--sweep` then raises the upstream rate for the desk (trades at a tenth of the quote rate) and
reports the highest rate that keeps the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from market.stream.transport import DATA_CHANNEL, RedisTransport, open_batch, pubsub_channel  # noqa: E402

SETUP = """
from django.core.management import call_command
from rest_framework_simplejwt.tokens import AccessToken
from accounts.services import register_user
call_command("migrate", verbosity=0)
print(AccessToken.for_user(register_user(username="bench", password="s3cret-Passw0rd!")))
"""
TARGET_P99_MS, TARGET_CPU = 100, 60
HUB_RUNNING = "Market-data hub running."
SO_TIMESTAMP = 29  # Linux's; Python's socket module does not name it
# Below malloc's mmap threshold (a read's buffer is allocated whole); frames are ~1 KB.
READ_SIZE, TIMESTAMP_SPACE = 65536, socket.CMSG_SPACE(16)  # a struct timeval
READ, AT_SOCKET = 1, 2  # a received quote's columns after its upstream time
GRACE_S = 2.0  # after the window, what was sent inside it may still arrive
SETTLE_S = 3.0  # after the last client connects: subscriptions reach the hub


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds every core spent on anything (ours or not) since boot."""
    ticks = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def redis_pid(redis_url: str) -> int:
    import redis

    return int(redis.Redis.from_url(redis_url).info("server")["process_id"])


async def keep_interest(transport: RedisTransport, name: str, symbols) -> None:
    """What a relay does for the desk: tell the hub which symbols this server's clients want."""
    while True:
        await transport.set_interest(name, set(symbols))
        await asyncio.sleep(1)


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

    pubsub = redis.Redis.from_url(redis_url, decode_responses=True).pubsub(
        ignore_subscribe_messages=True
    )
    await pubsub.subscribe(pubsub_channel(DATA_CHANNEL, redis_url))
    interest = asyncio.create_task(
        keep_interest(RedisTransport(redis_url), f"bench-bare-{port}", by_symbol)
    )
    async with websockets.serve(handler, "127.0.0.1", port):
        while interest:
            message = await pubsub.get_message(timeout=None)
            if message is not None:
                for _kind, symbol, body in open_batch(message["data"]):
                    websockets.broadcast(by_symbol.get(symbol, ()), f"[{body}]")


# --- the observer and the clients (processes of their own) ------------------------------------
def observe_upstream(redis_url: str, until: float, results) -> None:
    """Every quote and trade the hub published, by symbol: (upstream times)."""
    import redis

    pubsub = redis.Redis.from_url(redis_url, decode_responses=True).pubsub(
        ignore_subscribe_messages=True
    )
    pubsub.subscribe(pubsub_channel(DATA_CHANNEL, redis_url))
    quotes, trades = defaultdict(list), defaultdict(list)
    while time.time() < until:
        message = pubsub.get_message(timeout=0.5)
        if message is None:
            continue
        for kind, symbol, body in open_batch(message["data"]):
            if kind in ("quote", "trade"):
                (quotes if kind == "quote" else trades)[symbol].append(
                    timestamp(json.loads(body)["timestamp"])
                )
    results.put(({s: np.array(t) for s, t in quotes.items()}, dict(trades)))


def run_clients(jobs: list[tuple[str, list[str]]], window_queue, results) -> None:
    # A measuring process: nothing in it lives in cycles worth collecting, and a collection
    # pause here would be counted as the server's staleness.
    gc.disable()
    asyncio.run(_run_clients(jobs, window_queue, results))


class StreamClient:
    """One client: the websockets library's Sans-I/O protocol on a non-blocking socket.

    The client processes share this machine's cores with the servers, so what they spend is
    taken from what is measured: no task, queue or future per frame (the library's asyncio
    client costs several), and a frame is only stamped and kept; every frame is parsed after
    the window (outcome()). Each read carries two times: when this process read it (what the
    targets are judged on) and when the kernel had it at the socket (SO_TIMESTAMP: the last
    packet of the read, so never early) — the gap is this client's own wait for a core. No
    compression is offered (daphne would decline it; the bare server would accept it).
    """

    def __init__(self, url: str) -> None:
        self.address = urlsplit(url)
        self.protocol = ClientProtocol(parse_uri(url), max_size=None)
        self.received: list[tuple[float, float, bytearray]] = []  # (read, at socket, frame)
        self.closed = False  # by the server, before the end
        self.ending = False

    async def open(self) -> bool:
        loop = asyncio.get_running_loop()
        self.opened = loop.create_future()
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
        try:
            await loop.sock_connect(self.sock, (self.address.hostname, self.address.port))
        except OSError:
            self.sock.close()
            return False
        loop.add_reader(self.sock, self._readable)
        self.protocol.send_request(self.protocol.connect())
        self._write()
        return await self.opened

    def _readable(self) -> None:
        try:
            data, ancillary, _flags, _address = self.sock.recvmsg(READ_SIZE, TIMESTAMP_SPACE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        read = at_socket = time.time()
        if not data:
            self.lose()
            return
        for _level, _kind, stamp in ancillary:
            seconds, micros = struct.unpack("qq", stamp)
            at_socket = seconds + micros / 1e6
        self.protocol.receive_data(data)
        self._write()
        for event in self.protocol.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    if not event.fin:
                        raise NotImplementedError("the servers send each message in one frame")
                    self.received.append((read, at_socket, event.data))
            elif not self.opened.done():  # the handshake's response
                self.opened.set_result(self.protocol.handshake_exc is None)

    def _write(self) -> None:
        for data in self.protocol.data_to_send():
            if not data:  # the protocol's end of stream (after a close)
                self.lose()
            elif self.sock.fileno() >= 0:
                self.sock.send(data)  # a handshake or a pong: far below the socket's buffer

    def lose(self) -> None:
        if self.sock.fileno() >= 0:
            asyncio.get_running_loop().remove_reader(self.sock)
            self.sock.close()
            self.closed = not self.ending
        if not self.opened.done():
            self.opened.set_result(False)

    def outcome(self, timestamps: dict[str, float]) -> dict:
        """Every quote (upstream time, read, at socket) by symbol and every trade's upstream time.

        `timestamps` caches ISO text → epoch across clients (many get each quote)."""
        quotes: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
        trades: list[float] = []
        for read, at_socket, text in self.received:
            for message in json.loads(text):
                kind = message["type"]
                if kind == "quote" or kind == "trade":
                    iso = message["timestamp"]
                    if (at := timestamps.get(iso)) is None:
                        at = timestamps[iso] = timestamp(iso)
                    if kind == "quote":
                        quotes[message["symbol"]].append((at, read, at_socket))
                    else:
                        trades.append(at)
        return {
            "quotes": {s: np.array(q).reshape(-1, 3) for s, q in quotes.items()},
            "trades": trades,
            "closed": self.closed,
        }

    def frames_within(self, window: tuple[float, float]) -> int:
        return sum(window[0] <= read <= window[1] for read, _, _ in self.received)


async def _run_clients(jobs, window_queue, results) -> None:
    async def connect(url: str) -> StreamClient:
        for _ in range(100):
            client = StreamClient(url)
            if await client.open():
                return client
            await asyncio.sleep(0.2)
        raise RuntimeError(f"could not open {client.address.netloc}")

    clients = []
    for index, (url, _symbols) in enumerate(jobs):
        clients.append(asyncio.create_task(connect(url)))
        if index % 50 == 49:
            await asyncio.sleep(0.05)
    clients = await asyncio.gather(*clients)
    results.put(("ready", None))
    window = await asyncio.to_thread(window_queue.get)
    await asyncio.sleep(max(0.0, window[1] + GRACE_S - time.time()))
    for client in clients:
        client.ending = True
        client.lose()
    timestamps: dict[str, float] = {}
    outcome = [
        client.outcome(timestamps) | {"symbols": symbols}
        for client, (_url, symbols) in zip(clients, jobs, strict=True)
    ]
    results.put(("done", (outcome, sum(client.frames_within(window) for client in clients))))


def staleness(
    upstream: dict, outcomes: list[dict], window, end: float, arrival: int = READ
) -> np.ndarray:
    """Per client and subscribed symbol, every upstream quote sent inside the window, until
    the client had it (`arrival`: READ by the client, or AT_SOCKET)."""
    samples = []
    for result in outcomes:
        for symbol in result["symbols"]:
            sent = upstream.get(symbol, np.array([]))
            sent = sent[(sent >= window[0]) & (sent <= window[1])]
            got = result["quotes"].get(symbol, np.zeros((0, 3)))
            got = got[np.argsort(got[:, 0], kind="stable")]
            held, at = got[:, 0], np.minimum.accumulate(got[::-1, arrival])[::-1]
            index = np.searchsorted(held, sent, side="left")
            late = end - sent  # never delivered: stale to the end
            delivered = index < len(held)
            late[delivered] = at[index[delivered]] - sent[delivered]
            samples.append(late)
    samples = np.concatenate(samples) if samples else np.array([])
    return samples if len(samples) else np.array([np.nan])


def measure(name: str, urls: list[str], pids: list[int], others: dict, args, redis_url) -> dict:
    symbols = SYMBOLS[: args.symbols]
    jobs = []
    for i in range(args.clients):
        chosen = [symbols[(i * 7 + k) % len(symbols)] for k in range(args.per_client)]
        jobs.append((urls[i % len(urls)] + ",".join(chosen), chosen))
    context = multiprocessing.get_context("spawn")
    results, window_queue = context.Queue(), context.Queue()
    shares = [jobs[k :: args.client_processes] for k in range(args.client_processes)]
    clients = [
        context.Process(target=run_clients, args=(share, window_queue, results)) for share in shares
    ]
    for process in clients:
        process.start()
    for _ in clients:
        assert results.get(timeout=120)[0] == "ready"
    start = time.time() + SETTLE_S
    end = start + args.seconds
    upstream_results = context.Queue()
    observer = context.Process(
        target=observe_upstream, args=(redis_url, end + GRACE_S, upstream_results)
    )
    observer.start()
    for _ in clients:
        window_queue.put((start, end))
    watched = {
        "server": pids,
        **others,
        "clients": [p.pid for p in clients],
        "observer": [observer.pid],
    }
    time.sleep(max(0.0, start - time.time()))
    load = os.getloadavg()[0]
    before = {key: sum(cpu_seconds(pid) for pid in pids_) for key, pids_ in watched.items()}
    each_server_before = [cpu_seconds(pid) for pid in pids]
    machine_before = machine_busy_seconds()
    time.sleep(max(0.0, end - time.time()))
    cpu = {
        key: 100 * (sum(cpu_seconds(pid) for pid in pids_) - before[key]) / args.seconds
        for key, pids_ in watched.items()
    }
    each_server = [
        100 * (cpu_seconds(pid) - was) / args.seconds
        for pid, was in zip(pids, each_server_before, strict=True)
    ]
    # The rest of the machine's busy time: other work sharing these cores during the window.
    cpu["others"] = 100 * (machine_busy_seconds() - machine_before) / args.seconds - sum(
        cpu.values()
    )
    upstream_quotes, upstream_trades = upstream_results.get(timeout=60)
    if not upstream_quotes:
        print("  (the observer saw no upstream quotes: is the hub publishing?)", flush=True)
    outcomes, frames = [], 0
    for _ in clients:
        _done, (outcome, counted) = results.get(timeout=120)
        outcomes += outcome
        frames += counted
    for process in [*clients, observer]:
        process.join(10)

    stale = staleness(upstream_quotes, outcomes, (start, end), end + GRACE_S) * 1000
    at_socket = staleness(upstream_quotes, outcomes, (start, end), end + GRACE_S, AT_SOCKET)
    expected = delivered = 0
    for result in outcomes:
        for symbol in result["symbols"]:
            expected += sum(start <= t <= end for t in upstream_trades.get(symbol, []))
        delivered += sum(start <= t <= end for t in result["trades"])
    figures = {
        "p50": float(np.percentile(stale, 50)),
        "p99": float(np.percentile(stale, 99)),
        "p99 at socket": float(np.percentile(at_socket, 99) * 1000),
        "trades": 100 * delivered / max(expected, 1),
        "frames": frames / args.seconds,
        "upstream": sum(((q >= start) & (q <= end)).sum() for q in upstream_quotes.values())
        / args.seconds,
        "upstream trades": sum(
            start <= t <= end for times in upstream_trades.values() for t in times
        )
        / args.seconds,
        "closed": sum(r["closed"] for r in outcomes),
        "cpu": cpu,
        "load": load,
    }
    # The servers' CPU per frame delivered: what a frame costs each, whatever the rate.
    figures["us per frame"] = 1e6 * sum(each_server) / 100 / max(figures["frames"], 1)
    # The hub process's CPU per message it published (quotes and trades; the paper feed that
    # makes them runs in it too: bench/hub.py tells the two apart).
    figures["hub us per message"] = (
        1e6 * cpu["hub"] / 100 / max(figures["upstream"] + figures["upstream trades"], 1)
    )
    figures["holds"] = (
        figures["p99"] < TARGET_P99_MS
        and figures["trades"] >= 100
        and max(each_server) < TARGET_CPU
        and figures["closed"] == 0
    )
    cpu_text = "  ".join(
        [f"server {' + '.join(f'{value:.0f}' for value in each_server)}%"]
        + [f"{key} {value:.0f}%" for key, value in cpu.items() if key != "server"]
    )
    print(
        f"{name:<28} upstream {figures['upstream']:5.0f} q/s  "
        f"staleness p50 {figures['p50']:7.1f} ms  p99 {figures['p99']:8.1f} ms "
        f"(at the socket {figures['p99 at socket']:.0f} ms)  "
        f"trades {figures['trades']:6.2f}%  frames/s {figures['frames']:7.0f}  "
        f"closed {figures['closed']}  CPU (of a core): {cpu_text}  "
        f"server CPU per frame {figures['us per frame']:.1f} µs  "
        f"hub CPU per upstream message {figures['hub us per message']:.1f} µs  load {load:.1f}",
        flush=True,
    )
    return figures


SYMBOLS: list[str] = []  # the paper exchange's universe, filled in main()


def stop(processes: list[subprocess.Popen], label: str) -> None:
    started = time.monotonic()
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)  # -X faulthandler: its stacks go to the log
            process.wait()
            print(f"  ({label} did not stop within 15 s of SIGTERM: aborted)", flush=True)
    if (took := time.monotonic() - started) > 2:
        print(f"  ({label} took {took:.1f} s to stop)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--per-client", type=int, default=10)
    parser.add_argument("--quotes", type=float, default=1000)
    parser.add_argument("--trades", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--servers", default="desk,naive,bare")
    parser.add_argument("--daphnes", type=int, default=1, help="desk daphne processes")
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--sweep", default="", help="desk only: quote rates to try, e.g. 2000,4000")
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
        # Every client (and the observer) streams as the one bench user: lift the per-user cap.
        "STREAM_MAX_CONNECTIONS_PER_USER": str(args.clients + 10),
    }
    python, manage = sys.executable, str(ROOT / "manage.py")
    token = subprocess.run(
        [python, manage, "shell", "-c", SETUP], env=env, cwd=ROOT, capture_output=True,
        text=True, check=True,
    ).stdout.split()[-1]  # fmt: skip
    log = open(work / "servers.log", "w")  # noqa: SIM115 (open for the whole run)
    quiet = {"env": env, "cwd": ROOT, "stdout": log, "stderr": subprocess.STDOUT}

    def daphne(app: str) -> tuple[subprocess.Popen, int]:
        port = free_port()
        command = [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app]
        return subprocess.Popen(command, **quiet), port

    def hub(quotes: float, trades: float) -> subprocess.Popen:
        rates = ["--quotes-per-second", str(quotes), "--trades-per-second", str(trades)]
        started = (work / "servers.log").read_text().count(HUB_RUNNING)
        command = [python, "-X", "faulthandler", manage, "runstream", *rates]
        process = subprocess.Popen(command, **quiet)
        deadline = time.monotonic() + 30  # a hub that was killed holds the lock for its TTL
        while (work / "servers.log").read_text().count(HUB_RUNNING) == started:
            if time.monotonic() > deadline:
                sys.exit("the hub did not start within 30 s")
            time.sleep(0.2)
        return process

    def desk_urls(ports):
        path = f"/api/v1/broker/stream?token={token}&streams=quotes,trades&symbols="
        return [f"ws://127.0.0.1:{port}{path}" for port in ports]

    def run(kind: str, quotes: float, trades: float, label: str) -> dict:
        hub_process = hub(quotes, trades)
        if kind == "desk":
            servers = [daphne("tradedesk.asgi:application") for _ in range(args.daphnes)]
            urls = desk_urls([port for _, port in servers])
        elif kind == "naive":
            servers = [daphne("bench.naive_stream:application")]
            urls = [f"ws://127.0.0.1:{servers[0][1]}/naive?symbols="]
        else:
            port = free_port()
            command = [python, __file__, "--bare-server", str(port)]
            servers = [(subprocess.Popen(command, **quiet), port)]
            urls = [f"ws://127.0.0.1:{port}/?symbols="]
        others = {"hub": [hub_process.pid], "redis": [redis_pid(redis_url)]}
        try:
            return measure(label, urls, [p.pid for p, _ in servers], others, args, redis_url)
        finally:
            stop([p for p, _ in servers], kind)
            stop([hub_process], "hub")

    print(
        f"{args.clients} clients x {args.per_client} of {args.symbols} symbols "
        f"({args.client_processes} client processes); {os.cpu_count()} cores shared by "
        f"everything; {args.seconds:.0f} s per run; server logs in {work}",
        flush=True,
    )
    names = {"desk": f"desk (relay, {args.daphnes} daphne)", "naive": "naive group_send (daphne)"}
    per_frame = {}
    for kind in filter(None, args.servers.split(",")):
        label = f"{names.get(kind, 'bare websockets')} {args.quotes:.0f} q/s"
        per_frame[kind] = run(kind, args.quotes, args.trades, label)["us per frame"]
    held, holding = None, True  # every rate is run; the answer is the last of an unbroken run
    for rate in sorted(float(r) for r in filter(None, args.sweep.split(","))):
        figures = run("desk", rate, rate / 10, f"{names['desk']} {rate:.0f} q/s")
        holding = holding and figures["holds"]
        held = rate if holding else held
    if args.sweep:
        print(f"highest swept quote rate that holds the targets: {held}", flush=True)
    if "desk" in per_frame and "bare" in per_frame:  # the same run's bare server is the yardstick
        ratio = per_frame["desk"] / per_frame["bare"]
        print(f"desk / bare cpu per frame: {ratio:.1f}x", flush=True)


if __name__ == "__main__":
    main()
