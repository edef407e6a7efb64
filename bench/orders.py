"""Benchmark: place orders through the API on the paper exchange, against its floors.

    .venv/bin/python bench/orders.py [--requests N] [--postgres URL] [--redis URL]
                                     [--servers gunicorn-1,gunicorn-N,daphne] [--day-orders N]

For SQLite (a temporary file) and, given --postgres (or DATABASE_URL), PostgreSQL, each in a
process of its own, on the same server and in the same run: a DRF hello-world; the
minimal-CRUD floor (the same JWT authentication, throttle and JSON parsing as an order, one
INSERT, the row serialized back: a bench-only route and table); "record only" (the floor
plus what any desk does before asking a broker: the caller's broker account, the pending
order and its audit event, the order in the reply); and placing orders (market, and limit
orders that rest). Each under gunicorn with one sync worker, gunicorn with a worker per core
(`nproc`), and daphne (the embedded run's server), driven by a pool of http.client threads:
requests/s and p50/p99 latency. Then, in-process: SQL statements per order (BEGIN, COMMIT,
SAVEPOINT and RELEASE counted apart), and what an order costs once the account placed
--day-orders orders that day (their rows written in bulk, as placing them leaves them)
against its 10th. The last line is the target's ratio: `place / crud floor: NN%` (market
orders, gunicorn, one worker, PostgreSQL). The defaults take about three minutes on two cores.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HELLO_PATH = "/bench/hello/"
CRUD_PATH = "/bench/crud/"
RECORD_PATH = "/bench/record/"
ORDERS_PATH = "/api/v1/orders/"
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
DAY_SAMPLES = 60  # orders timed per account in the day-cost comparison

# Served as "bench.orders:application" (WSGI, gunicorn) or "bench.orders:asgi_application"
# (daphne): the project's URLs plus the bench's routes.
if __name__ != "__main__":
    import django
    from django.conf import settings

    settings.ROOT_URLCONF = __name__
    django.setup()
    import dataclasses
    import uuid

    from django.core.asgi import get_asgi_application
    from django.core.wsgi import get_wsgi_application
    from django.db import models
    from django.urls import include, path
    from rest_framework import serializers
    from rest_framework.permissions import AllowAny
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from accounts.selectors import broker_account_for
    from orders import throttles
    from orders.serializers import OrderBodySerializer, OrderDetailSerializer
    from orders.services import record_submission

    class Note(models.Model):
        """The minimal-CRUD floor's row: a few columns of an order, nothing else."""

        user_id = models.BigIntegerField()
        symbol = models.CharField(max_length=16)
        side = models.CharField(max_length=8)
        qty = models.DecimalField(max_digits=24, decimal_places=9)
        created_at = models.DateTimeField(auto_now_add=True)

        class Meta:
            app_label = "bench"
            db_table = "bench_note"

    class NoteSerializer(serializers.ModelSerializer):
        class Meta:
            model = Note
            fields = ["id", "symbol", "side", "qty", "created_at"]

    application = get_wsgi_application()
    asgi_application = get_asgi_application()

    class HelloView(APIView):
        authentication_classes: list = []
        permission_classes = [AllowAny]

        def get(self, request):
            return Response({"hello": "world"})

    class CrudView(APIView):
        """The floor: what any authenticated write costs, with the order's auth and throttle."""

        def post(self, request):
            throttles.limit(request.user, "place")
            parsed = NoteSerializer(data=request.data)
            parsed.is_valid(raise_exception=True)
            note = parsed.save(user_id=request.user.pk)
            return Response(NoteSerializer(note).data, status=201)

    class RecordOnlyView(APIView):
        def post(self, request):
            throttles.limit(request.user, "place")
            parsed = OrderBodySerializer(data=request.data)
            parsed.is_valid(raise_exception=True)
            order = record_submission(
                user=request.user,
                broker_account=broker_account_for(request.user, None),
                request=dataclasses.replace(
                    parsed.to_order_input(), client_order_id=str(uuid.uuid4())
                ),
                source="api",
            )
            return Response({"order": OrderDetailSerializer(order).data}, status=201)

    urlpatterns = [
        path(HELLO_PATH.lstrip("/"), HelloView.as_view()),
        path(CRUD_PATH.lstrip("/"), CrudView.as_view()),
        path(RECORD_PATH.lstrip("/"), RecordOnlyView.as_view()),
        path("", include("tradedesk.urls")),
    ]


def _servers(cores: int) -> dict:
    return {
        "gunicorn-1": lambda port: _gunicorn(port, 1),
        f"gunicorn-{cores}": lambda port: _gunicorn(port, cores),
        "daphne": lambda port: [
            "daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0",
            "bench.orders:asgi_application",
        ],
    }  # fmt: skip


def _gunicorn(port: int, workers: int) -> list[str]:
    return [
        "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
        "--log-level", "warning", "bench.orders:application",
    ]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(port: int, method: str, url: str, body: bytes | None, headers: dict):
    """(status, seconds) of one request on its own connection, as a client sends it."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, url, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    finally:
        connection.close()


def _drive(port: int, requests: list, threads: int) -> dict:
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda args: _request(port, *args), requests))
    elapsed = time.perf_counter() - started
    bad = sorted({status for status, _ in results if status not in (200, 201)})
    if bad:
        raise SystemExit(f"unexpected statuses {bad} from {requests[0][1]}")
    latencies = sorted(seconds for _, seconds in results)
    return {
        "rate": len(requests) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


# Concurrent orders must not meet the wash-trade guard: buys only, round the cheaper
# symbols, so buying power lasts (about $40 an order).
BENCH_SYMBOLS = ("INTC", "T", "PFE", "PLTR", "BAC", "VZ", "CSCO", "WFC")


def _body(index: int, **fields) -> bytes:
    order = {"symbol": BENCH_SYMBOLS[index % len(BENCH_SYMBOLS)], "qty": "1", "side": "buy"}
    return json.dumps(order | {"type": "market"} | fields).encode()


def _resting(index: int) -> bytes:
    # Far below the market: it rests (a book of open orders on the account).
    return _body(index, type="limit", limit_price="1.00", time_in_force="gtc")


def split(captured: list[dict]) -> tuple[int, int]:
    """(statements, transaction control) among captured queries."""
    control = sum(q["sql"].lstrip().upper().startswith(TRANSACTION_CONTROL) for q in captured)
    return len(captured) - control, control


# --- one database, in a process of its own ---------------------------------------------
def _one_database(args) -> dict:
    workdir = tempfile.mkdtemp(prefix="tradedesk-bench-")
    os.environ.setdefault("TRADEDESK_DATA_DIR", workdir)
    os.environ["ORDER_RATE_LIMIT"] = "100000000/min"
    # The bench places thousands of orders a day: lift the desk's daily limit for its users.
    os.environ["MAX_DAILY_TRADES"] = "100000000"
    os.environ["DJANGO_SETTINGS_MODULE"] = "tradedesk.settings"
    os.environ.pop("DEBUG", None)
    sys.path[:] = [str(ROOT), *[p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]]

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from rest_framework_simplejwt.tokens import RefreshToken

    from accounts.services import register_user

    call_command("migrate", verbosity=0)
    import bench.orders as served  # the served module: its bench-only table

    if served.Note._meta.db_table not in connection.introspection.table_names():
        with connection.schema_editor() as editor:
            editor.create_model(served.Note)

    serial = itertools.count()

    def trader(name: str) -> str:
        username = f"{name}-{os.getpid()}-{next(serial)}"
        user = register_user(username=username, password="bench-Passw0rd!-long")
        return str(RefreshToken.for_user(user).access_token)

    def auth(token: str) -> dict:
        return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    cores = os.cpu_count() or 1
    servers = _servers(cores)
    chosen = [name for name in servers if name.split("-")[0] in args.servers]
    n, threads = args.requests, max(4, 2 * cores)
    results: dict = {"database": connection.vendor, "servers": {}}
    for name in chosen:
        # Fresh traders per server: every run starts from the same account state.
        crud, record, market = auth(trader("crud")), auth(trader("record")), auth(trader("buy"))
        resting = [auth(trader(f"rest{i}")) for i in range(20)]  # small books each
        routes = {
            "hello": [("GET", HELLO_PATH, None, {})] * n,
            "crud floor": [("POST", CRUD_PATH, _body(i), crud) for i in range(n)],
            "record only": [("POST", RECORD_PATH, _body(i), record) for i in range(n)],
            "place market": [("POST", ORDERS_PATH, _body(i), market) for i in range(n)],
            "place limit": [
                ("POST", ORDERS_PATH, _resting(i), resting[i % len(resting)]) for i in range(n)
            ],
        }
        port = _free_port()
        log = Path(workdir) / f"{name}.log"  # the servers' own chatter, kept out of the figures
        server = subprocess.Popen(
            [sys.executable, "-m", *servers[name](port)],
            cwd=ROOT,
            env=os.environ.copy(),
            stderr=log.open("w"),
        )
        try:
            for _ in range(300):
                try:
                    if _request(port, "GET", HELLO_PATH, None, {})[0] == 200:
                        break
                except OSError:
                    time.sleep(0.1)
            else:
                raise SystemExit(f"{name} did not start: {log}")
            measured = {}
            for route, requests in routes.items():
                _drive(port, requests[: max(20, 4 * cores)], threads)  # every worker warm
                measured[route] = _drive(port, requests, threads)
            results["servers"][name] = measured
        finally:
            server.terminate()
            server.wait(timeout=30)
        print(f"  {connection.vendor}: {name} done", file=sys.stderr, flush=True)
    results["statements"] = _statements(trader, connection)
    results["day"] = _day_cost(args.day_orders, connection)
    return results


def _client(token: str):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _place(client, body: bytes) -> None:
    response = client.post(ORDERS_PATH, json.loads(body), format="json")
    assert response.status_code == 201, response.content


def _statements(trader, connection) -> dict:
    """Statements of one order through the API in-process, after the account's first."""
    from django.test.utils import CaptureQueriesContext

    counts = {}
    for kind, body in (("market", _body(0)), ("limit", _resting(0))):
        client = _client(trader(f"count{kind}"))
        _place(client, _body(1))
        seen = set()
        for _ in range(5):
            with CaptureQueriesContext(connection) as captured:
                _place(client, body)
            seen.add(split(captured.captured_queries))
        counts[kind] = sorted(seen)
    return counts


def _day_cost(day_orders: int, connection) -> dict:
    """Median ms per market order, in-process, as an account's 10th order of the day and as
    another's day_orders-th (the orders before it written in bulk). The two accounts' orders
    alternate, so whatever else the machine does falls on both alike."""
    from rest_framework_simplejwt.tokens import RefreshToken

    from accounts.services import register_user
    from orders.tests.day_support import fill_day

    def trader(history: int):
        username = f"day{history}-{os.getpid()}"
        user = register_user(username=username, password="bench-Passw0rd!-long")
        client = _client(str(RefreshToken.for_user(user).access_token))
        fill_day(user, history - 10, symbols=BENCH_SYMBOLS, price="40")
        if connection.vendor == "postgresql":
            # A day written in a second has not met autovacuum's ANALYZE, which a day placed
            # over hours has: without it the planner takes the account's index for the
            # exchange's open orders and walks the day's thousands of filled ones.
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        for i in range(10):  # the day's last few through the API: caches warm as any day's
            _place(client, _body(i))
        return client

    clients = {"10": trader(10), str(day_orders): trader(day_orders)}
    seconds: dict[str, list[float]] = {name: [] for name in clients}
    for i in range(DAY_SAMPLES):
        for name, client in clients.items():
            started = time.perf_counter()
            _place(client, _body(i))
            seconds[name].append(time.perf_counter() - started)
    return {name: statistics.median(each) * 1000 for name, each in seconds.items()}


# --- the run --------------------------------------------------------------------------
def _run_database(args, env: dict) -> dict:
    command = [sys.executable, __file__, "--one-database", *_passed(args)]
    done = subprocess.run(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, check=True)
    return json.loads(done.stdout)


def _passed(args) -> list[str]:
    return [
        "--requests", str(args.requests), "--servers", ",".join(args.servers),
        "--day-orders", str(args.day_orders),
    ]  # fmt: skip


def _report(results: list[dict], day_orders: int) -> None:
    routes = ("hello", "crud floor", "record only", "place market", "place limit")
    for result in results:
        database = result["database"]
        for server, measured in result["servers"].items():
            floor = measured["crud floor"]["rate"]
            print(f"{database}, {server}:")
            for route in routes:
                m = measured[route]
                print(
                    f"  {route:13} {m['rate']:8.1f} req/s  p50 {m['p50_ms']:6.1f} ms"
                    f"  p99 {m['p99_ms']:6.1f} ms  {m['rate'] / floor:6.1%} of the crud floor"
                    f"  {m['rate'] / measured['hello']['rate']:6.1%} of hello"
                )
        for kind, counts in result["statements"].items():
            shown = ", ".join(f"{s} + {c} BEGIN/COMMIT" for s, c in counts)
            print(f"{database}: statements per {kind} order: {shown}")
        day = result["day"]
        tenth, late = day["10"], day[str(day_orders)]
        print(
            f"{database}: order cost in-process: 10th of the day {tenth:.2f} ms, "
            f"{day_orders:,}th {late:.2f} ms ({late / tenth - 1:+.0%})"
        )
    postgres = next((r for r in results if r["database"] == "postgresql"), None)
    if postgres is None or "gunicorn-1" not in postgres["servers"]:
        print("place / crud floor: n/a (needs --postgres and gunicorn)")
        return
    one = postgres["servers"]["gunicorn-1"]
    print(f"place / crud floor: {one['place market']['rate'] / one['crud floor']['rate']:.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="per route and server")
    parser.add_argument("--postgres", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", ""))
    parser.add_argument(
        "--servers",
        type=lambda text: text.split(","),
        default=["gunicorn", "daphne"],
        help="gunicorn (one worker and one per core) and/or daphne",
    )
    parser.add_argument("--day-orders", type=int, default=5000)
    parser.add_argument("--one-database", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_database:
        print(json.dumps(_one_database(args)))
        return
    started = time.perf_counter()
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    results = [_run_database(args, base)]
    if args.postgres:
        results.append(
            _run_database(args, base | {"DATABASE_URL": args.postgres, "REDIS_URL": args.redis})
        )
    print(f"{os.cpu_count()} cores; {args.requests} requests per route; ", end="")
    print(f"{time.perf_counter() - started:.0f} s")
    _report(results, args.day_orders)


if __name__ == "__main__":
    main()
