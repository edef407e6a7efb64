"""Order sync: the broker's orders upserted into the desk's record, batch by batch.

One `INSERT … ON CONFLICT … DO UPDATE … WHERE <incoming is newer>` per batch with one OrderEvent
per changed order in the same transaction: on PostgreSQL a single statement from a staging table
filled by binary COPY, which also locks the rows' prior state and writes the events; on SQLite a
multi-row VALUES, then the events. The stream's `order` frames follow the commit, one
channel-layer message per batch. The periodic sync, the API's "sync now" and the stream's live
order updates all go through `upsert_broker_orders`."""

from __future__ import annotations

import functools
import logging
import operator
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Max, Min, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import BrokerAccount, User
from accounts.selectors import active_broker_accounts
from accounts.services import broker_for
from tradedesk.broker import Broker, types
from tradedesk.broker.base import OrderUpdateHandler
from tradedesk.broker.errors import BrokerError

from . import events, selectors, throttles
from .models import Order, OrderEvent, OrderSyncLease, SyncRun
from .services import (
    MIRRORED_FIELDS,
    event_name,
    event_name_sql,
    reconcile_pending,
    record_event,
)

logger = logging.getLogger(__name__)

# Alpaca's largest page.
PAGE_LIMIT = 500
# Timestamps reach the desk truncated to microseconds (Alpaca's carry nanoseconds): the next
# page starts one microsecond before the newest order seen, so orders sharing the page's last
# timestamp are fetched again rather than skipped; ids already seen are dropped.
_OVERLAP = timedelta(microseconds=1)
_TERMINAL_SQL = ", ".join(f"'{status}'" for status in sorted(types.TERMINAL_STATUSES))


class SyncInProgress(Exception):
    """Another sync of this broker account holds its lock."""


@dataclass(frozen=True)
class SyncCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def __add__(self, other: SyncCounts) -> SyncCounts:
        return SyncCounts(
            self.created + other.created,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
        )


# --- the sync -----------------------------------------------------------------


def sync_orders(
    broker_account: BrokerAccount,
    *,
    since: datetime | None = None,
    broker: Broker | None = None,
    on_batch: Callable[[SyncCounts], None] | None = None,
) -> SyncCounts:
    """Page through the account's orders at the broker (oldest first) and upsert them in
    batches of at least ORDER_SYNC_BATCH_SIZE orders (whole pages).

    Starts at `since`, else at the account's watermark (see `sync_watermark`). Each batch is
    committed on its own, so a sync killed midway keeps what it wrote and the next one resumes
    from the watermark. Then the orders still unconfirmed (the watermark never sees them) are
    looked up by client_order_id (`reconcile_unconfirmed`). Raises SyncInProgress when another
    sync of the account is running.
    """
    broker = broker or broker_for(broker_account)
    with account_sync_lock(broker_account) as renew_lock:
        cursor = since if since is not None else sync_watermark(broker_account)
        counts = SyncCounts()
        recent: dict[str, datetime] = {}  # ids seen at or after the cursor: they may come again
        batch: list[types.BrokerOrder] = []

        def flush() -> None:
            nonlocal counts
            if batch:
                counts += upsert_broker_orders(broker_account, batch, source="sync")
                batch.clear()
                renew_lock()
                if on_batch is not None:
                    on_batch(counts)

        while True:
            page = broker.list_orders(status="all", after=cursor, direction="asc", limit=PAGE_LIMIT)
            fresh = [order for order in page if order.id not in recent]
            if not fresh:
                if len(page) >= PAGE_LIMIT:
                    logger.warning(
                        "broker account %s: a whole page of orders shares one timestamp; "
                        "orders after it are unreachable by time paging",
                        broker_account.pk,
                    )
                break
            batch.extend(fresh)
            if len(batch) >= settings.ORDER_SYNC_BATCH_SIZE:
                flush()
            if len(page) < PAGE_LIMIT:
                break
            cursor = max(_submitted_at(order) for order in page) - _OVERLAP
            recent = {
                order_id: at
                for order_id, at in [*recent.items(), *((o.id, _submitted_at(o)) for o in page)]
                if at >= cursor
            }
        flush()
        reconcile_unconfirmed(broker_account, broker=broker)
    return counts


def reconcile_unconfirmed(broker_account: BrokerAccount, *, broker: Broker | None = None) -> int:
    """Settle the account's unconfirmed orders (`services.reconcile_pending`, one look-up by
    client_order_id each): confirmed by the broker, or lost once overdue. Returns how many
    were settled; the rest are still young enough for the broker's answer to come."""
    broker = broker or broker_for(broker_account)
    settled = 0
    for order in selectors.unconfirmed_orders(broker_account):
        settled += not reconcile_pending(order, broker=broker).is_unconfirmed
    return settled


def reconcile_all_unconfirmed() -> int:
    """`reconcile_unconfirmed` for every account that has such orders (the beat's task).

    A broker that fails one account's look-ups is logged and the next account goes on: the
    next run (or the account's sync) tries again.
    """
    settled = 0
    for broker_account in BrokerAccount.objects.filter(
        pk__in=selectors.unconfirmed_orders().values("broker_account")
    ):
        try:
            settled += reconcile_unconfirmed(broker_account)
        except BrokerError as failure:
            logger.warning(
                "broker account %s: pending orders not reconciled: %s",
                broker_account.pk,
                failure.message,
            )
    return settled


def sync_watermark(broker_account: BrokerAccount) -> datetime | None:
    """Where the next sync starts: the oldest order still open, else the newest order synced.

    Derived from committed rows, so it only ever advances with a committed batch. A leg is
    listed inside its parent, so an open leg holds the watermark at its parent's submission.
    """
    submitted = Coalesce("parent__submitted_at", "submitted_at")
    marks = (
        Order.objects.filter(broker_account=broker_account)
        .exclude(broker_order_id="")
        .aggregate(
            oldest_open=Min(submitted, filter=~Q(status__in=types.TERMINAL_STATUSES)),
            newest=Max(submitted),
        )
    )
    mark = marks["oldest_open"] or marks["newest"]
    return None if mark is None else mark - _OVERLAP


def _submitted_at(order: types.BrokerOrder) -> datetime:
    return order.submitted_at or order.created_at


# --- the upsert ---------------------------------------------------------------


class _Outcome(NamedTuple):
    """One order of a batch after its upsert."""

    pk: int
    broker_order_id: str
    written: bool  # inserted or updated; False: the guard kept the stored row
    created: bool
    event: str | None  # the OrderEvent recorded (its status, fill or broker id changed)


@dataclass(frozen=True)
class _Existing:
    pk: int
    broker_order_id: str
    client_order_id: str
    status: str
    filled_qty: object


def upsert_broker_orders(
    broker_account: BrokerAccount,
    snapshots: Sequence[types.BrokerOrder],
    *,
    source: str,
    updates: Mapping[str, types.OrderUpdate] | None = None,
) -> SyncCounts:
    """Upsert broker snapshots (and their legs, as child orders) in one transaction.

    Monotonic: an older snapshot, a lower filled qty or a step out of a terminal status
    leaves the row as it is. A pending desk order (no broker id yet) is matched by its
    client_order_id. Every order whose status, filled qty or broker id changed gets one
    OrderEvent; an order that didn't change writes nothing. `updates` are the live trade
    updates the snapshots came with (by broker order id): such an OrderEvent takes the update's
    event name and time, and an execution's own price, qty and execution id (`_event_values`).

    On PostgreSQL a batch is one statement, events included (`_merge_statement`). A snapshot
    whose client_order_id is taken — by a desk order whose submission timed out (to claim) or
    by another broker order (to skip) — fails it on the client id's unique index; the batch is
    then redone after a locking read that sorts those out first, as every batch does elsewhere.
    """
    live = updates or {}
    if connection.vendor != "postgresql":
        return _upsert_with_legs(broker_account, snapshots, source, live, resolve_client_ids=True)
    try:
        return _upsert_with_legs(broker_account, snapshots, source, live, resolve_client_ids=False)
    except IntegrityError:
        return _upsert_with_legs(broker_account, snapshots, source, live, resolve_client_ids=True)


def _upsert_with_legs(
    broker_account: BrokerAccount,
    snapshots: Sequence[types.BrokerOrder],
    source: str,
    updates: Mapping[str, types.OrderUpdate],
    *,
    resolve_client_ids: bool,
) -> SyncCounts:
    with transaction.atomic():
        counts, pks = _upsert(broker_account, snapshots, {}, source, updates, resolve_client_ids)
        legs = [leg for parent in snapshots for leg in parent.legs]
        if legs:
            parents = {leg.id: pks[parent.id] for parent in snapshots for leg in parent.legs}
            leg_counts, _ = _upsert(broker_account, legs, parents, source, {}, resolve_client_ids)
            counts += leg_counts
    return counts


def _upsert(
    broker_account: BrokerAccount,
    snapshots: Sequence[types.BrokerOrder],
    parents: dict[str, int],
    source: str,
    updates: Mapping[str, types.OrderUpdate],
    resolve_client_ids: bool,
) -> tuple[SyncCounts, dict[str, int]]:
    """One batch: one upsert with its events, then the stream's frames (after the commit)."""
    incoming, existing, claimed = snapshots, {}, set()
    if resolve_client_ids:
        incoming, existing, claimed = _resolve_client_ids(broker_account, snapshots)
    batch = _Batch(broker_account.user_id, broker_account.pk, source, timezone.now())
    if not incoming:
        outcomes = []
    elif connection.vendor == "postgresql":
        outcomes = _write_postgresql(batch, incoming, parents, updates, claimed)
    else:
        outcomes = _write_values(batch, incoming, parents, updates, existing)
    _publish(batch, incoming, outcomes)
    written = [outcome for outcome in outcomes if outcome.written]
    created = sum(outcome.created for outcome in written)
    counts = SyncCounts(
        created=created,
        updated=len(written) - created,
        unchanged=len(snapshots) - len(written),
    )
    return counts, {outcome.broker_order_id: outcome.pk for outcome in outcomes}


class _Batch(NamedTuple):
    user_id: int
    broker_account_id: int
    source: str
    now: datetime


def _resolve_client_ids(
    broker_account: BrokerAccount, snapshots: Sequence[types.BrokerOrder]
) -> tuple[list[types.BrokerOrder], dict[str, _Existing], set[str]]:
    """Claim pending desk orders and drop snapshots reusing a taken client_order_id.

    Returns the snapshots to write, the batch's rows as they were (by broker id) and the
    broker ids just claimed.
    """
    existing = _lock_existing(broker_account, snapshots)
    by_broker_id = {row.broker_order_id: row for row in existing if row.broker_order_id}
    pending = {row.client_order_id: row for row in existing if not row.broker_order_id}
    taken_client_ids = {row.client_order_id: row.broker_order_id for row in by_broker_id.values()}
    incoming, claimed = [], set()
    for snapshot in snapshots:
        claim = pending.get(snapshot.client_order_id)
        if snapshot.id not in by_broker_id and claim is not None:
            # The desk placed it but never heard back (a timed-out submission): it's this one.
            # Back to pending if the reconciler had given it up as lost: the broker has it.
            Order.objects.filter(pk=claim.pk).update(
                broker_order_id=snapshot.id, status="pending_new"
            )
            by_broker_id[snapshot.id] = claim
            claimed.add(snapshot.id)
        elif taken_client_ids.get(snapshot.client_order_id, snapshot.id) != snapshot.id:
            logger.warning(
                "broker account %s: order %s reuses client_order_id %r of order %s; skipped",
                broker_account.pk,
                snapshot.id,
                snapshot.client_order_id,
                taken_client_ids[snapshot.client_order_id],
            )
            continue
        incoming.append(snapshot)
    return incoming, by_broker_id, claimed


def _lock_existing(
    broker_account: BrokerAccount, snapshots: Sequence[types.BrokerOrder]
) -> list[_Existing]:
    """The batch's rows as they are before it, locked (so the events name the true change)."""
    broker_ids = [s.id for s in snapshots]
    client_ids = [s.client_order_id for s in snapshots]
    if connection.vendor == "postgresql":
        import psycopg

        # Two bound arrays instead of the ORM's 2 x 500 literals rendered into the SQL.
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(_LOCK_EXISTING_SQL, [broker_account.pk, broker_ids, client_ids])
            return [_Existing(*row) for row in cursor]
    rows = (
        Order.objects.select_for_update()
        .filter(broker_account=broker_account)
        .filter(Q(broker_order_id__in=broker_ids) | Q(client_order_id__in=client_ids))
        .order_by("pk")
        .values_list("pk", "broker_order_id", "client_order_id", "status", "filled_qty")
    )
    return [_Existing(*row) for row in rows]


_LOCK_EXISTING_SQL = (
    f"SELECT id, broker_order_id, client_order_id, status, filled_qty FROM {Order._meta.db_table}"  # noqa: S608
    " WHERE broker_account_id = %s"
    " AND (broker_order_id = ANY(%s::text[]) OR client_order_id = ANY(%s::text[]))"
    " ORDER BY id FOR UPDATE"
)


# Columns written on insert, in statement order; per-row values come from `_row`.
_ROW_COLUMNS = (
    "broker_order_id",
    *MIRRORED_FIELDS,
    "replaced_by",
    "replaces",
    "parent_id",
    "broker_updated_at",
    "broker_created_at",
    # An order brought in by the sync or the stream is dated by the broker (never updated:
    # an order the desk placed keeps its own time).
    "created_at",
)
# Columns the same for every row of a batch.
_BATCH_COLUMNS = ("user_id", "broker_account_id", "placed_via", "updated_at")
# Columns a newer snapshot overwrites.
_UPDATED_COLUMNS = (
    *MIRRORED_FIELDS,
    "replaced_by",
    "replaces",
    "broker_updated_at",
    "broker_created_at",
    "updated_at",
)


_mirrored_values = operator.attrgetter(*MIRRORED_FIELDS)


def _row(snapshot: types.BrokerOrder, parents: dict[str, int]) -> tuple:
    return (
        snapshot.id,
        *_mirrored_values(snapshot),
        snapshot.replaced_by or "",
        snapshot.replaces or "",
        parents.get(snapshot.id),
        snapshot.updated_at,
        snapshot.created_at,
        snapshot.created_at,
    )


def _batch_values(batch: _Batch) -> tuple:
    """The values of _BATCH_COLUMNS."""
    return (batch.user_id, batch.broker_account_id, "sync", batch.now)


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


@functools.cache
def _conflict_clause() -> str:
    table = _q(Order._meta.db_table)
    newer = (
        f"{table}.broker_updated_at IS NULL"
        f" OR EXCLUDED.broker_updated_at > {table}.broker_updated_at"
        f" OR (EXCLUDED.broker_updated_at = {table}.broker_updated_at"
        f" AND (EXCLUDED.filled_qty > {table}.filled_qty"
        f" OR (EXCLUDED.status IN ({_TERMINAL_SQL})"
        f" AND {table}.status NOT IN ({_TERMINAL_SQL}))))"
    )
    assignments = ", ".join(f"{_q(c)} = EXCLUDED.{_q(c)}" for c in _UPDATED_COLUMNS)
    return (
        # The predicate of the partial unique index order_broker_id_unique, as Django wrote it
        # (SQLite only infers the index from the very same expression).
        " ON CONFLICT (broker_account_id, broker_order_id) WHERE NOT (broker_order_id = '')"
        f" DO UPDATE SET {assignments}"
        f" WHERE ({newer})"
        f" AND EXCLUDED.filled_qty >= {table}.filled_qty"
        f" AND ({table}.status NOT IN ({_TERMINAL_SQL}) OR EXCLUDED.status = {table}.status)"
    )


# Binary COPY needs each column's exact wire type; the staging table uses these.
_STAGING_TYPES = {
    "CharField": "text",
    "DecimalField": "numeric",
    "DateTimeField": "timestamptz",
    "BooleanField": "bool",
    "ForeignKey": "int8",
}
_STAGING_TABLE = "order_sync_incoming"
# Staged with each row besides its columns: what a live update puts on the event
# (`_event_values`) and whether the row was just claimed (its broker id changed: an event even
# if nothing else did).
_STAGING_EXTRA = (
    ("event_name", "text"),
    ("event_qty", "numeric"),
    ("event_price", "numeric"),
    ("event_execution_id", "text"),
    ("event_at", "timestamptz"),
    ("claimed", "bool"),
)


def _event_values(update: types.OrderUpdate | None) -> tuple:
    """A live update's OrderEvent values: event name, qty, price, execution id, time.

    None where the event derives its own (from the status change, the order's average price and
    the broker's updated_at): a sync's snapshots, or a non-execution's price and id.
    """
    if update is None:
        return (None, None, None, None, None)
    execution = update.is_execution and bool(update.execution_id)
    return (
        update.event,
        update.qty,
        update.price if execution else None,
        update.execution_id if execution else None,
        update.timestamp,
    )


@functools.cache
def _staging_columns() -> list[tuple[str, str]]:
    fields = {f.column: f for f in Order._meta.concrete_fields}
    return [
        *((c, _STAGING_TYPES[fields[c].get_internal_type()]) for c in _ROW_COLUMNS),
        *_STAGING_EXTRA,
    ]


# pg_advisory_xact_lock's first key: the desk's order merges (the second is the account).
_MERGE_LOCK_NAMESPACE = 0x7D5C0001


@functools.cache
def _merge_statement() -> str:
    """Lock the batch's rows, upsert, record an OrderEvent per change: one statement.

    `existing` is the locked pre-image (RETURNING can't show a row's old values); the upsert
    waits on it through a one-time filter, so every row is locked — and read as it was —
    before the upsert changes any. Identifiers come from the models; values are parameters.
    """
    table = _q(Order._meta.db_table)
    columns = ", ".join(_q(c) for c in (*_BATCH_COLUMNS, *_ROW_COLUMNS))
    staged = ", ".join(_q(c) for c in _ROW_COLUMNS)
    event_columns = "order_id, event, status, filled_qty, price, qty, execution_id, at"
    changed = (
        "e.id IS NULL OR s.claimed"
        " OR (e.status, e.filled_qty) IS DISTINCT FROM (w.status, w.filled_qty)"
    )
    return f"""
        WITH existing AS (
            SELECT id, broker_order_id, status, filled_qty FROM {table}
            WHERE broker_account_id = %(account)s AND NOT (broker_order_id = '')
            AND broker_order_id IN (SELECT broker_order_id FROM {_STAGING_TABLE})
            ORDER BY id FOR UPDATE
        ), written AS (
            INSERT INTO {table} ({columns})
            SELECT %(user)s, %(account)s, %(placed_via)s, %(now)s, {staged}
            FROM {_STAGING_TABLE} WHERE (SELECT count(*) FROM existing) >= 0
            {_conflict_clause()}
            RETURNING id, broker_order_id, status, filled_qty, filled_avg_price, broker_updated_at
        ), outcomes AS (
            SELECT w.*, s.event_qty, s.event_price, s.event_execution_id, s.event_at,
                e.id IS NULL AS created, CASE WHEN {changed}
                THEN coalesce(s.event_name, {event_name_sql("e.status", "w.status")}) END AS event
            FROM written w JOIN {_STAGING_TABLE} s USING (broker_order_id)
            LEFT JOIN existing e USING (broker_order_id)
        ), recorded AS (
            INSERT INTO {_q(OrderEvent._meta.db_table)} ({event_columns}, source, detail)
            SELECT id, event, status, filled_qty, coalesce(event_price, filled_avg_price),
                event_qty, coalesce(event_execution_id, ''), coalesce(event_at, broker_updated_at),
                %(source)s, '{{}}'
            FROM outcomes WHERE event IS NOT NULL
        )
        SELECT coalesce(o.id, e.id), broker_order_id, o.id IS NOT NULL, coalesce(o.created, false),
            o.event
        FROM outcomes o FULL JOIN existing e USING (broker_order_id)
    """  # noqa: S608


def _write_postgresql(
    batch: _Batch,
    snapshots: Sequence[types.BrokerOrder],
    parents: dict[str, int],
    updates: Mapping[str, types.OrderUpdate],
    claimed: set[str],
) -> list[_Outcome]:
    """Binary COPY of the batch into a per-session staging table, then `_merge_statement`.

    COPY's per-row encoding runs in psycopg's C code, where bound arrays (an UNNEST) are
    encoded value by value in Python: measured, the merge is about twice as fast.
    """
    import psycopg

    # Sorted, so concurrent upserts of overlapping batches take row locks in one order.
    rows = sorted(
        (*_row(s, parents), *_event_values(updates.get(s.id)), s.id in claimed) for s in snapshots
    )
    columns = _staging_columns()
    connection.ensure_connection()
    # Django's error classes (an IntegrityError redoes the batch), as from its own cursors.
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        # One round trip (a pipeline also carries the transaction's BEGIN). An asynchronous
        # commit (no wait for the WAL flush): a sync writes a copy of the broker's state, and a
        # database crash loses only the newest commits, whole; the watermark is read from the
        # rows that survived, so the next sync fetches those orders again. DELETE, not TRUNCATE
        # (a new file per batch): ON COMMIT DELETE ROWS empties the table in place; this clears
        # it for legs following a batch in one commit.
        with cursor.connection.pipeline():
            cursor.execute("SET LOCAL synchronous_commit = off")
            # One merge per account at a time (the stream's and a sync's): inserting new rows
            # while another merge locks existing ones deadlocked PostgreSQL now and then, even
            # in one key order. Released at commit.
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)",
                (_MERGE_LOCK_NAMESPACE, batch.broker_account_id),
            )
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {_STAGING_TABLE}"
                f" ({', '.join(f'{_q(c)} {t}' for c, t in columns)}) ON COMMIT DELETE ROWS"
            )
            cursor.execute(f"DELETE FROM {_STAGING_TABLE}")  # noqa: S608 (our identifier)
        with cursor.copy(f"COPY {_STAGING_TABLE} FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([t for _, t in columns])
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            _merge_statement(),
            {
                "user": batch.user_id,
                "account": batch.broker_account_id,
                "placed_via": "sync",
                "now": batch.now,
                "source": batch.source,
            },
            prepare=True,  # run every batch: planned once per connection
        )
        return [_Outcome(*row) for row in cursor.fetchall()]


def _write_values(
    batch: _Batch,
    snapshots: Sequence[types.BrokerOrder],
    parents: dict[str, int],
    updates: Mapping[str, types.OrderUpdate],
    existing: dict[str, _Existing],
) -> list[_Outcome]:
    """The upsert as multi-row VALUES (SQLite), then the events it calls for in one insert."""
    fields = {f.column: f for f in Order._meta.concrete_fields}
    columns = (*_BATCH_COLUMNS, *_ROW_COLUMNS)
    adapt = [fields[c].get_db_prep_save for c in columns]
    per_row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    rows = sorted(_row(snapshot, parents) for snapshot in snapshots)
    # SQLite allows 32,766 parameters per statement.
    chunk = 32_766 // len(columns)
    written = {}
    with connection.cursor() as cursor:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            params = [
                prep(value, connection)
                for row in part
                for prep, value in zip(adapt, (*_batch_values(batch), *row), strict=True)
            ]
            cursor.execute(
                f"INSERT INTO {_q(Order._meta.db_table)} ({', '.join(map(_q, columns))})"  # noqa: S608
                f" VALUES {', '.join([per_row] * len(part))}"
                + _conflict_clause()
                + f" RETURNING {_q('id')}, {_q('broker_order_id')}",
                params,
            )
            written.update((broker_order_id, pk) for pk, broker_order_id in cursor.fetchall())

    outcomes, recorded = [], []
    for snapshot in snapshots:
        before = existing.get(snapshot.id)
        pk = written.get(snapshot.id)
        if pk is None:
            if before is not None:
                outcomes.append(_Outcome(before.pk, snapshot.id, False, False, None))
            continue
        event = None
        if before is None or (before.status, before.filled_qty, before.broker_order_id) != (
            snapshot.status,
            snapshot.filled_qty,
            snapshot.id,
        ):
            name, qty, price, execution_id, at = _event_values(updates.get(snapshot.id))
            event = name or event_name(before.status if before else "", snapshot.status)
            recorded.append(
                OrderEvent(
                    order_id=pk,
                    event=event,
                    status=snapshot.status,
                    filled_qty=snapshot.filled_qty,
                    price=price if price is not None else snapshot.filled_avg_price,
                    qty=qty,
                    execution_id=execution_id or "",
                    at=at or snapshot.updated_at,
                    source=batch.source,
                )
            )
        outcomes.append(_Outcome(pk, snapshot.id, True, before is None, event))
    OrderEvent.objects.bulk_create(recorded)
    return outcomes


def _publish(
    batch: _Batch, snapshots: Sequence[types.BrokerOrder], outcomes: list[_Outcome]
) -> None:
    """The stream's `order` frames for the recorded events, sent in one go after the commit."""
    by_id = {snapshot.id: snapshot for snapshot in snapshots}
    timestamp = batch.now.isoformat()  # the rows' updated_at
    messages = [
        events.order_frame(
            by_id[outcome.broker_order_id],
            outcome.event,
            pk=outcome.pk,
            broker_order_id=outcome.broker_order_id,
            timestamp=timestamp,
        )
        for outcome in outcomes
        if outcome.event is not None
    ]
    events.publish_after_commit(batch.user_id, messages)


# --- live order updates -------------------------------------------------------


def apply_order_update(broker_account: BrokerAccount, update: types.OrderUpdate) -> SyncCounts:
    """Apply one of the broker's trade updates to the desk's record, and audit it.

    Every event that changes the order goes through the sync's upsert (so never backwards)
    and is recorded under the broker's event name. A refused cancel or replace changes
    nothing and is recorded as such (`_record_refusal`). An execution is recorded once per
    execution id, even when the order already showed it (a sync got there first, or the
    broker delivered it twice).
    """
    if update.event in types.REFUSAL_EVENTS:
        _record_refusal(broker_account, update)
        return SyncCounts(unchanged=1)
    with transaction.atomic():
        counts = upsert_broker_orders(
            broker_account, [update.order], source="stream", updates={update.order.id: update}
        )
        if update.is_execution and update.execution_id:
            order_id = _record_execution(broker_account, update)
            if order_id is not None:
                events.announce_executions_after_commit(broker_account.pk, [order_id])
    return counts


def _stored_order(broker_account: BrokerAccount, update: types.OrderUpdate) -> Order | None:
    return Order.objects.filter(
        broker_account=broker_account, broker_order_id=update.order.id
    ).first()


def _record_execution(broker_account: BrokerAccount, update: types.OrderUpdate) -> int | None:
    """The execution's event, unless the upsert (now or at an earlier delivery) wrote it.

    Returns the order's id (None for an order the desk doesn't know).
    """
    order = _stored_order(broker_account, update)
    if order is None:
        return None
    if order.events.filter(execution_id=update.execution_id).exists():
        return order.pk
    try:
        with transaction.atomic():
            OrderEvent.objects.create(
                order=order,
                event=update.event,
                status=order.status,
                filled_qty=order.filled_qty,
                price=update.price,
                qty=update.qty,
                execution_id=update.execution_id,
                source="stream",
                # The order's record already reflected this execution: status and filled qty
                # are the order's now, not right after the execution.
                detail={"order_unchanged": True},
                at=update.timestamp,
            )
    except IntegrityError:
        pass  # a concurrent delivery recorded it
    return order.pk


def _record_refusal(broker_account: BrokerAccount, update: types.OrderUpdate) -> None:
    """A cancel or replace the broker refused: the order stays as it is; the event says why."""
    order = _stored_order(broker_account, update)
    if order is None:
        logger.info(
            "broker account %s: %s for unknown order %s",
            broker_account.pk,
            update.event,
            update.order.id,
        )
        return
    detail = {"broker_status": update.order.status}
    if update.reason:
        detail["reason"] = update.reason
    # The order as it stands, as every service-recorded event (and its `order` frame).
    record_event(order, update.event, source="stream", at=update.timestamp, **detail)


def catch_up(broker_account: BrokerAccount) -> SyncCounts | None:
    """Sync what an order-update stream may have missed while it was down.

    The sync's watermark (the oldest order still open, else the newest order) reaches every
    order that can have changed since the last update the desk recorded, and orders placed
    at the broker meanwhile. None when another sync of the account is running: it covers this.
    """
    try:
        return sync_orders(broker_account)
    except SyncInProgress:
        return None


def order_update_handler(broker_account: BrokerAccount) -> OrderUpdateHandler:
    """The `on_update` for a broker's OrderUpdateStream: each update reaches the database.

    The stream process (`manage.py runstream`, or the embedded hub) runs one
    OrderUpdateStream per linked account with this handler; the periodic sync is the net.
    """
    # Closes stale database connections around each call, like a Channels consumer.
    apply = database_sync_to_async(apply_order_update)

    async def on_update(update: types.OrderUpdate) -> None:
        await apply(broker_account, update)

    return on_update


# --- one sync at a time per account -------------------------------------------


@contextmanager
def account_sync_lock(broker_account: BrokerAccount) -> Iterator[Callable[[], None]]:
    """Hold the account's sync lock (Redis when configured, else a database lease).

    Yields a function that renews the lock; raises SyncInProgress if another sync holds it.
    The lock expires after the task time limit, so a killed worker can't block the account.
    """
    ttl = settings.CELERY_TASK_TIME_LIMIT
    with _lock_for(broker_account, ttl) as renew:
        renewed_at = time.monotonic()

        def renew_now_and_then() -> None:
            nonlocal renewed_at
            if time.monotonic() - renewed_at > ttl / 3:  # renewing every batch costs a commit
                renew()
                renewed_at = time.monotonic()

        yield renew_now_and_then


@contextmanager
def _lock_for(broker_account: BrokerAccount, ttl: int) -> Iterator[Callable[[], None]]:
    if settings.REDIS_URL:
        from redis.exceptions import LockError

        lock = _redis().lock(f"tradedesk:order-sync:{broker_account.pk}", timeout=ttl)
        if not lock.acquire(blocking=False):
            raise SyncInProgress(f"broker account {broker_account.pk} is being synced")

        def renew() -> None:
            try:
                lock.reacquire()
            except LockError as lost:  # expired or deleted: another sync may have started
                raise SyncInProgress(f"lost the sync lock of account {broker_account.pk}") from lost

        try:
            yield renew
        finally:
            with suppress(LockError):  # expired meanwhile: nothing left to release
                lock.release()
        return

    holder = uuid.uuid4().hex
    if not _take_lease(broker_account, holder, ttl):
        raise SyncInProgress(f"broker account {broker_account.pk} is being synced")
    try:
        yield lambda: _extend_lease(broker_account, holder, ttl)
    finally:
        OrderSyncLease.objects.filter(broker_account=broker_account, holder=holder).update(
            holder="", expires_at=timezone.now()
        )


@functools.cache
def _redis():
    import redis

    return redis.Redis.from_url(settings.REDIS_URL)


def _take_lease(broker_account: BrokerAccount, holder: str, ttl: int) -> bool:
    now = timezone.now()
    OrderSyncLease.objects.bulk_create(
        [OrderSyncLease(broker_account=broker_account, expires_at=now)], ignore_conflicts=True
    )
    # One conditional UPDATE: of two concurrent takers, the second finds the holder set.
    taken = (
        OrderSyncLease.objects.filter(broker_account=broker_account)
        .filter(Q(holder="") | Q(expires_at__lte=now))
        .update(holder=holder, expires_at=now + timedelta(seconds=ttl))
    )
    return taken == 1


def _extend_lease(broker_account: BrokerAccount, holder: str, ttl: int) -> None:
    OrderSyncLease.objects.filter(broker_account=broker_account, holder=holder).update(
        expires_at=timezone.now() + timedelta(seconds=ttl)
    )


# --- sync runs (the API's and the schedule's progress records) -----------------


def execute_sync_run(run: SyncRun) -> SyncRun:
    """Sync the run's account (or every active account of its user), recording progress.

    A broker error marks the run failed and propagates (the task retries it); another sync
    of the same account running marks it skipped: that sync covers it.
    """
    accounts = (
        [run.broker_account] if run.broker_account_id else list(active_broker_accounts(run.user))
    )
    _save_run(run, status="running", started_at=timezone.now(), finished_at=None, error="")
    totals = SyncCounts()
    try:
        for account in accounts:
            done_before = totals

            def progress(counts: SyncCounts, base: SyncCounts = done_before) -> None:
                _save_run(run, **_count_fields(base + counts))

            totals += sync_orders(account, on_batch=progress)
    except SyncInProgress as busy:
        _save_run(run, status="skipped", error=str(busy), finished_at=timezone.now())
        return run
    except BrokerError as failure:
        _save_run(run, status="failed", error=failure.message, finished_at=timezone.now())
        raise
    except Exception as failure:
        _save_run(run, status="failed", error=repr(failure), finished_at=timezone.now())
        raise
    _save_run(run, status="done", finished_at=timezone.now(), **_count_fields(totals))
    return run


def _count_fields(counts: SyncCounts) -> dict[str, int]:
    return {"created": counts.created, "updated": counts.updated, "unchanged": counts.unchanged}


_FINISHED = frozenset({"done", "skipped", "failed"})


def _save_run(run: SyncRun, **values) -> None:
    if values.get("status") in _FINISHED:
        values["coalesce_key"] = None  # the next request queues a new run
    for name, value in values.items():
        setattr(run, name, value)
    SyncRun.objects.filter(pk=run.pk).update(**values)


class SyncQueueUnavailable(Exception):
    """The task queue refused the sync (its broker is down)."""


def request_sync(
    *, user: User, broker_account: BrokerAccount | None = None, trigger: str = "api"
) -> SyncRun:
    """Record a queued sync and hand it to a worker; the run's id is the task's id.

    Counted against the user's sync rate (raises ratelimit.RateLimitExceeded). A request for
    accounts whose requested sync is still queued or running gets that run back instead of
    queueing another (a run unfinished after the task time limit is taken as dead).
    """
    from kombu.exceptions import OperationalError

    from .tasks import run_sync  # the tasks module imports this one

    throttles.limit(user, "sync")
    run, created = _queued_run(user, broker_account, trigger)
    if not created:
        return run
    try:
        run_sync.apply_async((str(run.pk),), task_id=str(run.pk))
    except OperationalError as failure:
        _save_run(run, status="failed", error="task queue unavailable", finished_at=timezone.now())
        raise SyncQueueUnavailable(str(failure)) from failure
    run.refresh_from_db()
    return run


def _queued_run(
    user: User, broker_account: BrokerAccount | None, trigger: str
) -> tuple[SyncRun, bool]:
    """The unfinished requested run for these accounts, or a new queued one (True)."""
    key = f"{user.pk}:{broker_account.pk if broker_account else 'all'}"
    dead_before = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    SyncRun.objects.filter(coalesce_key=key, queued_at__lt=dead_before).update(coalesce_key=None)
    while True:
        try:
            with transaction.atomic():
                run = SyncRun.objects.create(
                    user=user, broker_account=broker_account, trigger=trigger, coalesce_key=key
                )
            return run, True
        except IntegrityError:
            existing = SyncRun.objects.filter(coalesce_key=key).first()
            if existing is not None:
                return existing, False
            # It finished between the insert and the read: queue a new one.
