"""Sync 10,000 broker orders (5,000 new + 5,000 changed) into PostgreSQL, four ways.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_sync python bench/sync.py

Prints rows/s for the desk's sync path (pages of 500; per batch of ORDER_SYNC_BATCH_SIZE
orders, whole pages, a binary COPY into a staging
table + one statement that locks the rows' prior state, merges with the monotonic guard and
writes an OrderEvent per change, then one channel-layer message with the batch's order frames),
a per-row update_or_create loop, bulk_create(update_conflicts=True) and binary COPY into a temp
table + one INSERT … SELECT … ON CONFLICT (the limit), measured in the same run, with the ratios.
The database's tables are emptied first: use a dedicated one.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradedesk.settings")

ORDERS = 10_000
CHANGED = 5_000
PER_ROW_SAMPLE = 2_000  # the per-row loop is slow: its rate is measured on a sample


def main() -> int:
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("bench/sync.py needs DATABASE_URL=postgres://… (a dedicated database); skipped.")
        return 0
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from django.conf import settings
    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.models import BrokerAccount
    from accounts.services import register_user
    from orders.models import Order
    from orders.record import MIRRORED_FIELDS
    from orders.sync import paging, upsert
    from orders.tests.fake_broker import FakeBroker, at_ns, broker_order

    user = register_user(username=f"bench-{time.time_ns()}", password="bench-Passw0rd!")
    account: BrokerAccount = user.broker_accounts.get()
    # The first 5,000 exist in the desk at an older state; at the broker they have filled.
    old = [broker_order(n, submitted_ns=n * 1000) for n in range(1, CHANGED + 1)]
    latest = [
        dataclasses.replace(
            order,
            status="filled",
            filled_qty=order.qty,
            filled_avg_price=Decimal("190.37"),
            filled_at=at_ns(10**12),
            updated_at=at_ns(10**12),
        )
        for order in old
    ] + [broker_order(n, submitted_ns=n * 1000) for n in range(CHANGED + 1, ORDERS + 1)]

    def reset() -> None:
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE orders_orderevent, orders_order, orders_ordersynclease")
        for start in range(0, len(old), 500):
            upsert.upsert_broker_orders(account, old[start : start + 500], source="sync")
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE orders_order")

    def timed(label: str, run, rows: int = ORDERS, repeats: int = 3) -> float:
        # Best of a few runs from the same starting state: the machine is shared.
        elapsed = float("inf")
        for _ in range(repeats):
            reset()
            started = time.perf_counter()
            run()
            elapsed = min(elapsed, time.perf_counter() - started)
        rate = rows / elapsed
        print(f"  {label:<58} {rate:>9,.0f} rows/s  ({elapsed:.2f} s for {rows:,})")
        return rate

    # --- the desk's sync path ------------------------------------------------
    def desk() -> None:
        broker = FakeBroker(((n + 1) * 1000, order) for n, order in enumerate(latest))
        counts = paging.sync_orders(account, broker=broker)
        assert counts == upsert.SyncCounts(created=ORDERS - CHANGED, updated=CHANGED, unchanged=0)

    # --- a per-row update_or_create loop (no guard, no events) -----------------
    mirrored = MIRRORED_FIELDS

    def per_row() -> None:
        sample = latest[CHANGED - PER_ROW_SAMPLE // 2 : CHANGED + PER_ROW_SAMPLE // 2]
        for snapshot in sample:
            Order.objects.update_or_create(
                broker_account=account,
                broker_order_id=snapshot.id,
                defaults={
                    "user": user,
                    "placed_via": "sync",
                    "broker_updated_at": snapshot.updated_at,
                    **{name: getattr(snapshot, name) for name in mirrored},
                },
            )

    # --- bulk_create(update_conflicts=True) (no guard, no events) --------------
    def bulk() -> None:
        # Django can't name a partial index's predicate in ON CONFLICT: give it a full one.
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE UNIQUE INDEX IF NOT EXISTS bench_full_broker_id"
                " ON orders_order (broker_account_id, broker_order_id)"
            )
        try:
            objects = [
                Order(
                    user=user,
                    broker_account=account,
                    broker_order_id=s.id,
                    placed_via="sync",
                    broker_updated_at=s.updated_at,
                    **{name: getattr(s, name) for name in mirrored},
                )
                for s in latest
            ]
            Order.objects.bulk_create(
                objects,
                batch_size=500,
                update_conflicts=True,
                unique_fields=["broker_account", "broker_order_id"],
                update_fields=[*mirrored, "broker_updated_at", "updated_at"],
            )
        finally:
            with connection.cursor() as cursor:
                cursor.execute("DROP INDEX IF EXISTS bench_full_broker_id")

    # --- binary COPY into a temp table + one merge, monotonic guard on (the limit) ---
    def copy_merge() -> None:
        import psycopg

        columns = [*upsert._BATCH_COLUMNS, *upsert._ROW_COLUMNS]
        batch = upsert._batch_values(upsert._Batch(user.pk, account.pk, "sync", timezone.now()))
        connection.ensure_connection()
        with transaction.atomic(), psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(
                "CREATE TEMP TABLE incoming_orders ON COMMIT DROP AS"
                " SELECT " + ", ".join(columns) + " FROM orders_order WITH NO DATA"
            )
            cursor.execute(
                "SELECT atttypid FROM pg_attribute WHERE attrelid = 'incoming_orders'::regclass"
                " AND attnum > 0 ORDER BY attnum"
            )
            types = [oid for (oid,) in cursor.fetchall()]
            with cursor.copy(
                f"COPY incoming_orders ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(types)
                for snapshot in latest:
                    copy.write_row((*batch, *upsert._row(snapshot, {})))
            cursor.execute(
                f"INSERT INTO orders_order ({', '.join(columns)})"
                f" SELECT {', '.join(columns)} FROM incoming_orders"
                + upsert._conflict_clause().split(" RETURNING")[0]
            )

    print(
        f"{ORDERS:,} broker orders ({ORDERS - CHANGED:,} new + {CHANGED:,} changed) into "
        f"PostgreSQL {connection.pg_version // 10000}:"
    )
    batch = f"{settings.ORDER_SYNC_BATCH_SIZE}/batch"
    desk_rate = timed(f"desk sync_orders (guard, events, frames; {batch})", desk)
    row_rate = timed("per-row update_or_create loop", per_row, rows=PER_ROW_SAMPLE, repeats=1)
    bulk_rate = timed("bulk_create(update_conflicts=True), no guard", bulk)
    limit_rate = timed("binary COPY + one INSERT … ON CONFLICT, guard on (limit)", copy_merge)
    print(f"desk / per-row:       {desk_rate / row_rate:6.1f}x   (target >= 20x)")
    print(f"desk / COPY+merge:    {desk_rate / limit_rate:6.0%}   (target >= 50%)")
    print(f"bulk_create / limit:  {bulk_rate / limit_rate:6.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
