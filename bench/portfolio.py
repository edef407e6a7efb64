"""The performance summary over 100,000 fills: the desk's set-based read vs a per-fill loop.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_portfolio python bench/portfolio.py

Writes 100,000 fills (50,000 orders of two executions each, over 40 symbols, buys and sells
alternating, some replace chains) into a fresh user's paper account, then times
`selectors.book` + `selectors.performance` (what GET /api/v1/portfolio/performance/ runs) and
counts its queries at 10,000 and at 100,000 fills (constant), against the naive way measured
in the same run: each fill loaded as a model, its order fetched through the foreign key to
find its replace chain, lots matched as it goes (timed on a sample, rate extrapolated).
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradedesk.settings")

FILLS = 100_000
SMALL = 10_000
NAIVE_SAMPLE = 10_000  # the per-fill loop is slow: its rate is measured on a sample
SYMBOLS = ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "GOOGL", "META", "AMD", "NFLX", "INTC"] * 4


def main() -> int:
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("bench/portfolio.py needs DATABASE_URL=postgres://… (a dedicated database); skipped.")
        return 0
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts.models import BrokerAccount
    from accounts.services import register_user
    from orders.models import Order
    from portfolio import ledger, selectors
    from portfolio.models import Fill

    def account_with(fills: int) -> BrokerAccount:
        user = register_user(username=f"bench-{time.time_ns()}", password="bench-Passw0rd!")
        account = user.broker_accounts.get()
        t0 = datetime(2025, 1, 2, 15, tzinfo=UTC)
        orders = [
            Order(
                user=user,
                broker_account=account,
                broker_order_id=f"b{n}",
                client_order_id=f"c{n}",
                symbol=SYMBOLS[(n // 2) % len(SYMBOLS)],
                side="buy" if n % 2 == 0 else "sell",
                type="market",
                time_in_force="day",
                qty=Decimal(10),
                status="filled",
                replaces=f"b{n - 2}" if n % 10 == 9 else "",
            )
            for n in range(fills // 2)
        ]
        Order.objects.bulk_create(orders, batch_size=5000)
        rows = [
            Fill(
                broker_account=account,
                order=order,
                broker_order_id=order.broker_order_id,
                execution_id=f"e{i}-{k}",
                symbol=order.symbol,
                side=order.side,
                qty=Decimal(5),
                price=Decimal(100 + (i * 7919) % 50) + Decimal(k) / 10,
                fee=Decimal("0.01"),
                at=t0 + timedelta(seconds=30 * (2 * i + k)),
                source="manual",
            )
            for i, order in enumerate(orders)
            for k in (0, 1)
        ]
        Fill.objects.bulk_create(rows, batch_size=5000)
        return account

    def desk(account: BrokerAccount) -> tuple[float, int, dict]:
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            summary = selectors.performance(selectors.book([account]), period="all")
            elapsed = time.perf_counter() - started
        return elapsed, len(queries), summary

    def naive(account: BrokerAccount, limit: int) -> float:
        """Per fill: a model, its order through the foreign key, its chain walked by queries."""
        started = time.perf_counter()
        executions = []
        for fill in Fill.objects.filter(broker_account=account).order_by("at", "id")[:limit]:
            order = fill.order  # one query per fill
            root = order
            while root.replaces:  # one more per step of a replace chain
                root = Order.objects.get(broker_account=account, broker_order_id=root.replaces)
            executions.append(
                ledger.Execution(
                    account_id=account.pk,
                    order_key=root.broker_order_id,
                    symbol=fill.symbol,
                    side=fill.side,
                    qty=fill.qty,
                    price=fill.price,
                    fee=fill.fee,
                    at=fill.at,
                    id=fill.pk,
                )
            )
        ledger.build(executions)
        return time.perf_counter() - started

    started = time.perf_counter()
    small, large = account_with(SMALL), account_with(FILLS)
    print(f"wrote {SMALL + FILLS:,} fills in {time.perf_counter() - started:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    desk(small)  # warm: imports, the calendar, prepared connections
    small_time, small_queries, _ = desk(small)
    large_time, large_queries, summary = desk(large)
    naive_time = naive(large, NAIVE_SAMPLE) * FILLS / NAIVE_SAMPLE
    print(
        f"PostgreSQL {connection.pg_version // 10000}, performance summary "
        f"(trades {summary['trades']:,}, realized {summary['realized_pl']}):"
    )
    print(f"  desk, {SMALL:>7,} fills: {small_time * 1000:8.0f} ms  {small_queries} queries")
    print(f"  desk, {FILLS:>7,} fills: {large_time * 1000:8.0f} ms  {large_queries} queries")
    print(
        f"  naive per-fill loop, {FILLS:,} fills: {naive_time * 1000:8.0f} ms "
        f"(timed on {NAIVE_SAMPLE:,}, {NAIVE_SAMPLE + NAIVE_SAMPLE // 10:,}+ queries)"
    )
    print(
        f"desk / naive time:    {large_time / naive_time:6.1%}"
        f"  ({naive_time / large_time:.1f}x faster)"
    )
    print(f"queries constant:     {small_queries == large_queries}")
    return 0 if small_queries == large_queries else 1


if __name__ == "__main__":
    raise SystemExit(main())
