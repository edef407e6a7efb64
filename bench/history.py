"""The order history page with 100,000 orders: keyset pages against OFFSET pages.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_history python bench/history.py

Creates one trader with 100,000 orders (once; later runs reuse them), then renders /orders/
in-process through Django's test client — the first page, a page 99,900 orders deep (reached
with the page's own keyset cursor) and a filtered page — and prints each one's server time and
query count, next to the naive way measured in the same run: the same queryset paged with
OFFSET at the same depth. Target (DESIGN.md): constant queries, < 50 ms server time.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradedesk.settings")

ORDERS = 100_000
USERNAME = "bench-history"
REPEATS = 9
DEEP = 99_900
SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "SPY", "QQQ", "TSLA", "META"]


def _seed():
    from django.db import connection

    from accounts.models import User
    from accounts.services import register_user
    from orders.models import Order

    user = User.objects.filter(username=USERNAME).first() or register_user(
        username=USERNAME, password="bench-Passw0rd!"
    )
    if Order.objects.filter(user=user).count() >= ORDERS:
        return user
    account = user.broker_accounts.get()
    Order.objects.bulk_create(
        [
            Order(
                user=user,
                broker_account=account,
                broker_order_id=f"bench-{n}",
                client_order_id=f"bench-{n}",
                symbol=SYMBOLS[n % len(SYMBOLS)],
                side="buy" if n % 3 else "sell",
                type="limit",
                time_in_force="gtc",
                qty=Decimal(1 + n % 50),
                limit_price=Decimal("100.00"),
                status="filled" if n % 5 else "canceled",
            )
            for n in range(ORDERS)
        ],
        batch_size=5_000,
    )
    # created_at is set on insert; spread the history over a year, five minutes apart.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE orders_order SET created_at = now() - (%s - id) * interval '5 minutes' "
            "WHERE user_id = %s",
            [
                Order.objects.filter(user=user).order_by("-id").values_list("id", flat=True)[0],
                user.pk,
            ],
        )
        cursor.execute("ANALYZE orders_order")
    return user


def _timed(call) -> tuple[float, int]:
    """Median milliseconds over REPEATS calls, and the queries of one call."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        call()
    queries = len(captured)  # now: the captured list is a view of the connection's log
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), queries


def main() -> int:
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("bench/history.py needs DATABASE_URL=postgres://… (a dedicated database); skipped.")
        return 0
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    settings.ALLOWED_HOSTS = ["testserver"]
    call_command("migrate", verbosity=0)
    from orders import history

    user = _seed()
    client = Client()
    client.force_login(user)

    def get(url: str):
        response = client.get(url)
        assert response.status_code == 200, response.status_code
        return response

    deep = history.filtered_orders(user, history.OrderFilters())[DEEP - 1]
    cursor = history.encode_cursor(deep)
    pages = {
        "first page": "/orders/",
        f"page {DEEP:,} deep (keyset)": f"/orders/?cursor={cursor}",
        "filtered (AAPL, sell, closed)": "/orders/?symbol=AAPL&side=sell&status=closed",
    }
    print(f"Order history, {ORDERS:,} orders of one trader, PostgreSQL; median of {REPEATS}.")
    results = {}
    for name, url in pages.items():
        results[name] = _timed(lambda url=url: get(url))
        ms, queries = results[name]
        print(f"  {name:32s} {ms:7.1f} ms  {queries} queries")

    def offset_page():
        rows = list(history.filtered_orders(user, history.OrderFilters())[DEEP : DEEP + 50])
        assert len(rows) == 50

    def keyset_page():
        page = history.order_history_page(user, history.OrderFilters(), cursor)
        assert len(page.orders) == 50

    keyset_ms, _ = _timed(keyset_page)
    offset_ms, _ = _timed(offset_page)
    print(
        f"  query alone, {DEEP:,} deep: keyset {keyset_ms:.1f} ms, OFFSET {offset_ms:.1f} ms "
        f"(OFFSET/keyset = {offset_ms / keyset_ms:.0f}x)"
    )
    counts = {queries for _, queries in results.values()}
    worst = max(ms for ms, _ in results.values())
    print(
        f"  constant queries: {'yes' if len(counts) == 1 else 'NO'} ({sorted(counts)}); "
        f"slowest page {worst:.1f} ms (target < 50 ms): {'met' if worst < 50 else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
