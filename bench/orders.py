"""Benchmark: place orders through the API on the paper exchange, against a DRF hello-world.

    /work/main/.venv/bin/python bench/orders.py [ORDERS] [CLIENT_THREADS] [gunicorn|daphne]

Starts gunicorn (one sync worker: one core; production's HTTP server) or daphne (the embedded
run's one server) on a loopback port with the project's app plus a DRF hello-world route, drives
both with a pool of http.client threads, and prints requests/s and the ratio (target: orders >=
40% of hello-world). For scale it also drives a "record only" route: what any desk must do for
an order before the broker is even asked — the same authentication, throttle and body parsing,
the caller's broker account, the pending order and its audit event stored in one transaction
(orders.services.record_submission), the order in the reply; no validation, no broker. Then
counts the SQL queries of each order placed in-process (target: the same for every order,
whatever the history). Uses a temporary SQLite database unless DATABASE_URL is set.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HELLO_PATH = "/bench/hello/"
RECORD_PATH = "/bench/record/"
ORDERS_PATH = "/api/v1/orders/"

# Served as "bench.orders:application" (WSGI, gunicorn) or "bench.orders:asgi_application"
# (daphne): the project's URLs plus a hello-world.
if __name__ != "__main__":
    import django
    from django.conf import settings

    settings.ROOT_URLCONF = __name__
    django.setup()
    import dataclasses
    import uuid

    from django.core.asgi import get_asgi_application
    from django.core.wsgi import get_wsgi_application
    from django.urls import include, path
    from rest_framework.permissions import AllowAny
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from accounts.selectors import broker_account_for
    from orders import throttles
    from orders.serializers import OrderBodySerializer, OrderDetailSerializer
    from orders.services import record_submission

    application = get_wsgi_application()
    asgi_application = get_asgi_application()

    class HelloView(APIView):
        authentication_classes: list = []
        permission_classes = [AllowAny]

        def get(self, request):
            return Response({"hello": "world"})

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
        path(RECORD_PATH.lstrip("/"), RecordOnlyView.as_view()),
        path("", include("tradedesk.urls")),
    ]


# One process each: one core.
SERVERS = {
    "gunicorn": lambda port: [
        "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1", "--log-level", "warning",
        "bench.orders:application",
    ],
    "daphne": lambda port: [
        "daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0", "bench.orders:asgi_application",
    ],
}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(port: int, method: str, url: str, body: bytes | None, headers: dict) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, url, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _drive(port: int, requests: list, threads: int) -> tuple[float, list[int]]:
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        statuses = list(pool.map(lambda args: _request(port, *args), requests))
    return time.perf_counter() - started, statuses


# Orders in flight at once must not meet the wash-trade guard (under daphne requests overlap,
# and a market sell while the same symbol's market buy is still open is refused, as Alpaca
# refuses it): the servers get buys only, round the cheaper symbols, so the account's buying
# power lasts (about $40 an order).
BENCH_SYMBOLS = ("INTC", "T", "PFE", "PLTR", "BAC", "VZ", "CSCO", "WFC")


def _order_body(index: int, *, side: str = "buy", symbol: str | None = None) -> bytes:
    symbol = symbol or BENCH_SYMBOLS[index % len(BENCH_SYMBOLS)]
    return json.dumps({"symbol": symbol, "qty": "1", "side": side, "type": "market"}).encode()


def main() -> None:
    orders = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    server_name = sys.argv[3] if len(sys.argv) > 3 else "gunicorn"
    if server_name not in SERVERS:
        raise SystemExit(f"server: one of {', '.join(SERVERS)}")
    workdir = tempfile.mkdtemp(prefix="tradedesk-bench-")
    os.environ.setdefault("TRADEDESK_DATA_DIR", workdir)
    os.environ["ORDER_RATE_LIMIT"] = "1000000/min"
    # The bench places hundreds of orders in a day: lift the desk's daily limit for its user.
    os.environ["MAX_DAILY_TRADES"] = "1000000"
    os.environ["DJANGO_SETTINGS_MODULE"] = "tradedesk.settings"
    sys.path[:] = [str(ROOT), *[p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]]

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient
    from rest_framework_simplejwt.tokens import RefreshToken

    from accounts.services import register_user

    call_command("migrate", verbosity=0)
    user = register_user(username=f"bench{os.getpid()}", password="bench-Passw0rd!-long")
    token = str(RefreshToken.for_user(user).access_token)
    # Its own trader: the pending orders it leaves would be open orders for the wash-trade guard.
    recorder = register_user(username=f"record{os.getpid()}", password="bench-Passw0rd!-long")
    record_token = str(RefreshToken.for_user(recorder).access_token)
    database = connection.vendor

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", *SERVERS[server_name](port)], cwd=ROOT, env=os.environ.copy()
    )
    try:
        for _ in range(100):
            try:
                if _request(port, "GET", HELLO_PATH, None, {}) == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit(f"{server_name} did not start")

        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        _drive(port, [("GET", HELLO_PATH, None, {})] * 50, threads)  # warm up
        _drive(port, [("POST", ORDERS_PATH, _order_body(i), auth) for i in range(20)], threads)

        hello_s, hello_statuses = _drive(port, [("GET", HELLO_PATH, None, {})] * orders, threads)
        record_auth = auth | {"Authorization": f"Bearer {record_token}"}
        record_requests = [
            ("POST", RECORD_PATH, _order_body(i), record_auth) for i in range(orders)
        ]
        record_s, record_statuses = _drive(port, record_requests, threads)
        order_requests = [("POST", ORDERS_PATH, _order_body(i), auth) for i in range(orders)]
        orders_s, order_statuses = _drive(port, order_requests, threads)
    finally:
        server.terminate()
        server.wait(timeout=10)

    statuses = hello_statuses + record_statuses + order_statuses
    bad = [status for status in statuses if status not in (200, 201)]
    if bad:
        raise SystemExit(f"unexpected statuses: {sorted(set(bad))}")

    # Queries per order, in-process: the same count for the first order and the thousandth.
    def queries_per_order(user) -> tuple[list[int], list[int]]:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
        counts = []
        for index in range(20):
            side = "buy" if index % 2 == 0 else "sell"  # one at a time: no overlap
            body = json.loads(_order_body(index, side=side, symbol="AAPL"))
            with CaptureQueriesContext(connection) as queries:
                response = client.post(ORDERS_PATH, body, format="json")
            assert response.status_code == 201, response.content
            counts.append(len(queries))
        # Buys and sells alternate and take different paths on the paper exchange (a sell
        # checks the shares held): each side's count must not grow with the history.
        return counts[0::2], counts[1::2]

    fresh = register_user(username=f"fresh{os.getpid()}", password="bench-Passw0rd!-long")
    fresh_buys, fresh_sells = queries_per_order(fresh)
    history = len(order_requests) + 20
    buys, sells = queries_per_order(user)

    hello_rate = orders / hello_s
    record_rate = orders / record_s
    order_rate = orders / orders_s
    print(f"database: {database}; {server_name}, one process; {threads} client threads")
    print(f"DRF hello-world: {hello_rate:8.1f} req/s ({orders} requests)")
    print(
        f"record only:     {record_rate:8.1f} req/s ({record_rate / hello_rate:.1%} of hello-world:"
        " auth, parse, pending order + audit event, reply; no validation, no broker)"
    )
    print(f"place order:     {order_rate:8.1f} orders/s ({orders} orders, all filled)")
    print(f"ratio: {order_rate / hello_rate:.1%} of hello-world (target >= 40%)")
    print(f"queries per order, fresh account: buy {fresh_buys}, sell {fresh_sells}")
    print(f"queries per order, after {history} orders: buy {buys}, sell {sells}")
    # Each account's first AAPL buy opens the position (its insert, in a savepoint: 3 queries
    # more); every later order is constant.
    constant = len(set(fresh_buys[1:] + buys[1:])) == 1 and len(set(fresh_sells + sells)) == 1
    print("constant queries per order:", "yes" if constant else "NO")


if __name__ == "__main__":
    main()
