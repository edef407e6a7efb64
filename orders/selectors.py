from __future__ import annotations

import functools
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import FilteredRelation, Max, OuterRef, Q, QuerySet, Subquery
from django.http import Http404

from accounts.models import BrokerAccount, User
from accounts.services import broker_for
from tradedesk import rows
from tradedesk.broker import types
from tradedesk.rows import quoted

from .models import (
    PENDING_APPROVAL,
    Order,
    OrderEvent,
    OrderTemplate,
    PositionSnapshot,
    TradingHalt,
)


def orders_for(user: User) -> QuerySet[Order]:
    return Order.objects.filter(user=user, parent__isnull=True)


def order_for(user: User, order_id: object) -> Order:
    """One of the caller's own orders (404 for anyone else's, never 403)."""
    try:
        return Order.objects.select_related("broker_account").get(user=user, pk=int(str(order_id)))
    except (Order.DoesNotExist, ValueError, OverflowError):
        raise Http404("No such order.") from None


_HALTS_KEY = "orders:active-halts"
_HALTS_GENERATION_KEY = "orders:active-halts:generation"
# A backstop only: every write of a halt through the ORM moves the generation.
_HALTS_CACHE_SECONDS = 60


def active_trading_halts(user: User, broker_account: BrokerAccount) -> list[TradingHalt]:
    """The kill switches that apply to this user's orders on this account, `halted` first."""
    halts = [
        halt
        for halt in _active_halts()
        if halt.scope == TradingHalt.SCOPE_DESK
        or (halt.scope == TradingHalt.SCOPE_USER and halt.user_id == user.pk)
        or (
            halt.scope == TradingHalt.SCOPE_BROKER_ACCOUNT
            and halt.broker_account_id == broker_account.pk
        )
    ]
    return sorted(halts, key=lambda halt: (halt.mode != TradingHalt.MODE_HALTED, halt.pk))


def _active_halts() -> list[TradingHalt]:
    """Every active halt (a handful at most). Cached only where the cache is shared by every
    process (Redis): a halt set anywhere must stop orders everywhere at once, and a
    process-local cache would not hear of it. The copy is tagged with the generation it
    was read under; orders.halts sets a new one on every change (halts_changed), so a copy
    read before a change, even one stored after it, is never used."""
    if not settings.REDIS_URL:
        return _read_active_halts()
    found = cache.get_many([_HALTS_GENERATION_KEY, _HALTS_KEY])
    generation = found.get(_HALTS_GENERATION_KEY)
    if generation is None:
        cache.add(_HALTS_GENERATION_KEY, uuid.uuid4().hex, None)
        generation = cache.get(_HALTS_GENERATION_KEY)
    copy = found.get(_HALTS_KEY)
    if copy is not None and copy[0] == generation:
        return copy[1]
    halts = _read_active_halts()
    cache.set(_HALTS_KEY, (generation, halts), _HALTS_CACHE_SECONDS)
    return halts


# The account's label names it in the refusal; nothing else of it (its secret!) is read.
_HALT_ACCOUNT = ("id", "label")


@functools.cache
def _active_halts_sql() -> str:
    halts, accounts = (quoted(model._meta.db_table) for model in (TradingHalt, BrokerAccount))
    return (
        f"SELECT {rows.shape(TradingHalt).columns('h')},"  # noqa: S608 (our identifiers)
        f" {rows.shape(BrokerAccount, _HALT_ACCOUNT).columns('b')}"
        f" FROM {halts} h LEFT JOIN {accounts} b"
        f" ON b.{quoted('id')} = h.{quoted('broker_account_id')}"
        f" WHERE h.{quoted('active')} = %s"
    )


def _read_active_halts() -> list[TradingHalt]:
    """Every active halt with its account's label, read by SQL written once (building the
    ORM's join cost more than the read)."""
    halt_shape, account_shape = rows.shape(TradingHalt), rows.shape(BrokerAccount, _HALT_ACCOUNT)
    halts = []
    for row in rows.fetch(_active_halts_sql(), [True]):
        halt = halt_shape.load(row)
        halt.broker_account = account_shape.load(row, halt_shape.width)
        halts.append(halt)
    return halts


def halts_changed() -> None:
    """A halt was set or lifted (and committed): no copy read before now is used again."""
    cache.set(_HALTS_GENERATION_KEY, uuid.uuid4().hex, None)


def open_orders() -> QuerySet[Order]:
    """Orders that can still trade, as the desk last saw them: any status but a terminal one
    (a status the desk has not seen before counts as open until the broker says otherwise)."""
    return Order.objects.exclude(status__in=types.TERMINAL_STATUSES)


def _literal(text: str) -> str:
    assert text.replace("_", "").isalnum(), text  # the desk's own vocabulary only
    return f"'{text}'"


def _open_orders_index() -> str:
    # SQLite, without statistics, prefers the foreign key's index (every order of the
    # account, the day's filled ones too) to the partial one of open orders: named here.
    return " INDEXED BY order_open_account_symbol" if connection.vendor == "sqlite" else ""


@functools.cache
def _book_sql() -> str:
    """exposure_and_placed_today's read, written once: the ORM took 3.5 ms to build it (a
    filtered join of every order column) for a query that runs in 0.02 ms. The partial
    indexes' own terms are written as literals, as they are in the indexes: SQLite uses a
    partial index only for a query whose terms match its own, never for bound values."""
    order, quote = Order._meta, connection.ops.quote_name

    def column(name: str, alias: str = "o") -> str:
        return f"{alias}.{quote(order.get_field(name).column)}"

    columns = rows.shape(Order).columns("o")
    terminal = ", ".join(_literal(status) for status in sorted(types.TERMINAL_STATUSES))
    table, accounts = quote(order.db_table), quote(BrokerAccount._meta.db_table)
    return (
        f"SELECT {columns}, t.placed, t.last_id"  # noqa: S608 (our identifiers)
        f" FROM {accounts} b CROSS JOIN (SELECT COUNT(*) AS placed, MAX(p.id) AS last_id"
        f" FROM {table} p"
        f" WHERE {column('user', 'p')} = %s AND {column('created_at', 'p')} >= %s"
        f" AND {column('parent', 'p')} IS NULL"
        f" AND NOT ({column('placed_via', 'p')} = {_literal('sync')}) AND p.id > %s) t"
        f" LEFT JOIN (SELECT * FROM {table} o{_open_orders_index()}"
        f" WHERE {column('broker_account')} = %s"
        f" AND NOT ({column('status')} IN ({terminal}))"
        f" AND ({column('symbol')} = %s OR {column('broker_order_id')} = '')) o ON 1 = 1"
        f" WHERE b.id = %s ORDER BY {column('created_at')}, {column('id')}"
    )


UNREAD = object()  # a PlacedCount the caller did not read: read it here


@dataclass(frozen=True)
class PlacedCount:
    """How many orders a user placed through the desk on the day that began at `since`, up
    to and including order `last_id`; read when `taken_at` (epoch s)."""

    since: datetime
    count: int
    last_id: int
    taken_at: float


# A read counts only the orders after the user's last PlacedCount, so the 5,000th order of a
# day reads what the 10th does; a new one is kept once that many more have been counted.
PLACED_COUNT_EVERY = 50
# The orders after a PlacedCount were created at most this long before it was taken (their
# clocks may differ from the one that took it by that much).
_PLACED_CLOCK_MARGIN = timedelta(seconds=60)


def placed_count_key(user_id: int) -> str:
    return f"orders:placed-count:{user_id}"


def forget_placed_count(user_id: int) -> None:
    """An order of the user was deleted: a kept count may include it."""
    cache.delete(placed_count_key(user_id))


def exposure_and_placed_today(
    broker_account: BrokerAccount,
    symbol: str,
    user: User,
    since: datetime,
    placed: PlacedCount | object | None = UNREAD,
) -> tuple[list[Order], int]:
    """The account's orders that can still trade in `symbol` and its unconfirmed open orders
    in any symbol (a status the desk doesn't know counts as open), oldest first, as the desk
    last saw them; and how many orders (legs not counted) the user placed through the desk
    at or after `since` (orders brought in by the sync or the stream, `placed_via="sync"`,
    were placed elsewhere or long ago: a newly linked account's history doesn't use up the
    day's MAX_DAILY_TRADES).

    One read: the account's row with those orders joined (none: one row of NULLs) and the
    count beside, each served by a partial index (order_open_account_symbol,
    order_user_placed) that holds no filled order. The count starts from the user's kept
    PlacedCount (`placed`: as the caller read it from the cache, else read here) and counts
    only the orders after it: every order of the user placed through the desk is recorded
    under the gate's lock on the user's accounts and committed before the next is judged, so
    none can appear later with an id below one already counted."""
    if placed is UNREAD:
        placed = cache.get(placed_count_key(user.pk))
    if not isinstance(placed, PlacedCount) or placed.since != since:
        placed = None
    taken_at = time.time()
    after = since
    if placed is not None:
        after = max(since, datetime.fromtimestamp(placed.taken_at, UTC) - _PLACED_CLOCK_MARGIN)
    params = [
        user.pk,
        connection.ops.adapt_datetimefield_value(after),
        placed.last_id if placed else 0,
        broker_account.pk,
        symbol,
        broker_account.pk,
    ]
    found = rows.fetch(_book_sql(), params)
    # Loaded by a shape built once (a raw queryset built its converters for every read);
    # the NULL row of no orders loads as None.
    shape = rows.shape(Order)
    orders = [order for row in found if (order := shape.load(row)) is not None]
    counted, last_id = (found[0][-2], found[0][-1]) if found else (0, None)
    total = counted + (placed.count if placed else 0)
    if last_id is not None and (placed is None or counted >= PLACED_COUNT_EVERY):
        kept = PlacedCount(since=since, count=total, last_id=last_id, taken_at=taken_at)
        cache.set(placed_count_key(user.pk), kept, 2 * 24 * 3600)
    return orders, total


def unconfirmed_orders(broker_account: BrokerAccount | None = None) -> QuerySet[Order]:
    """Orders recorded as pending whose broker answer never came (see Order.is_unconfirmed),
    oldest first; all accounts' when none is given."""
    orders = Order.objects.filter(status="pending_new", broker_order_id="")
    if broker_account is not None:
        orders = orders.filter(broker_account=broker_account)
    return orders.select_related("broker_account").order_by("created_at", "id")


class _FilledOrder(NamedTuple):
    symbol: str
    side: str
    filled_qty: Decimal
    filled_at: datetime | None


class Execution(NamedTuple):
    symbol: str
    side: str  # buy | sell
    qty: Decimal
    at: datetime
    order_id: int


class FillRead(NamedTuple):
    executions: list[Execution]  # the events', oldest first: by time, then order
    # The fills no event carries, by order: the rest of its filled qty, at its filled_at.
    rests: dict[int, Execution]
    last_event: int  # the highest fill event id read (after_event when none was)
    last_updated: datetime | None  # the latest updated_at of the orders read
    # An event read is older than one of its order's read before: the executions before it
    # must be replayed again.
    reordered: bool


def fills_since(
    broker_account: BrokerAccount,
    since: datetime,
    *,
    after_event: int | None = None,
    updated_since: datetime | None = None,
) -> FillRead:
    """The account's executions at or after `since` (tuples, not models: a busy day has
    hundreds); with `after_event`, only those of the fill events after that one, of the
    orders updated at or after `updated_since` (so the read does not grow with the day).

    Each rise of an order's filled qty in its OrderEvents is one execution at that event's
    time, so a partial fill counts even when the order is canceled afterwards (it never gets
    a filled_at); a fill no event carries (a row written without one) is taken at filled_at
    (`rests`; the orders read without `after_event` are all the window's).
    One indexed read: the account's orders with fills changed since `since`/`updated_since`
    (order_account_filled; a fill always moves updated_at), their fill events joined
    (order_event_order_at; an order without one joins a row of NULLs), and after
    `after_event`, what each order's earlier fill events recorded (the same index).
    """
    condition = Q(events__filled_qty__gt=0)
    if after_event is not None:
        condition &= Q(events__id__gt=after_event)
    orders = Order.objects.filter(
        broker_account=broker_account,
        filled_qty__gt=0,
        updated_at__gte=since if updated_since is None else updated_since,
        side__in=types.ORDER_SIDES,  # an mleg order's executions are its legs'
    ).annotate(fill_events=FilteredRelation("events", condition=condition))
    fields = [
        "id",
        "symbol",
        "side",
        "filled_qty",
        "filled_at",
        "updated_at",
        "fill_events__id",
        "fill_events__filled_qty",
        "fill_events__at",
    ]
    if after_event is not None:
        earlier = OrderEvent.objects.filter(
            order=OuterRef("pk"), filled_qty__gt=0, id__lte=after_event
        ).values("order")
        orders = orders.annotate(
            recorded=Subquery(earlier.annotate(most=Max("filled_qty")).values("most")),
            recorded_at=Subquery(earlier.annotate(latest=Max("at")).values("latest")),
        )
        fields += ["recorded", "recorded_at"]
    rows = orders.order_by("id", "fill_events__at", "fill_events__id").values_list(*fields)
    filled = {}
    events = []
    recorded: dict[int, Decimal] = defaultdict(Decimal)
    last_event, last_updated, reordered = after_event or 0, None, False
    for order_id, symbol, side, filled_qty, filled_at, updated_at, event_id, *event in rows:
        filled[order_id] = _FilledOrder(symbol, side, filled_qty, filled_at)
        last_updated = updated_at if last_updated is None else max(last_updated, updated_at)
        event_filled_qty, event_at, *before = event
        if before and before[0] is not None:
            recorded[order_id] = before[0]
            reordered = reordered or (event_at is not None and event_at < before[1])
        if event_at is not None:
            events.append((order_id, event_filled_qty, event_at))
            last_event = max(last_event, event_id)
    executions = []
    for order_id, filled_qty, at in events:
        if filled_qty > recorded[order_id] and at >= since:
            order = filled[order_id]
            executions.append(
                Execution(order.symbol, order.side, filled_qty - recorded[order_id], at, order_id)
            )
        recorded[order_id] = max(recorded[order_id], filled_qty)
    rests = {}
    for order_id, order in filled.items():
        rest = order.filled_qty - recorded[order_id]
        if rest > 0 and order.filled_at is not None and order.filled_at >= since:
            rests[order_id] = Execution(order.symbol, order.side, rest, order.filled_at, order_id)
    executions.sort(key=execution_order)
    return FillRead(executions, rests, last_event, last_updated, reordered)


def execution_order(execution: Execution) -> tuple[datetime, int, Decimal]:
    return execution.at, execution.order_id, execution.qty


def _placed_since(user: User, since: datetime) -> QuerySet[Order]:
    return Order.objects.filter(user=user, parent__isnull=True, created_at__gte=since).exclude(
        placed_via="sync"
    )


def open_orders_under(halt: TradingHalt) -> QuerySet[Order]:
    """The open orders a kill switch covers: the whole desk's, one user's or one account's."""
    orders = open_orders().select_related("user", "broker_account")
    if halt.scope == TradingHalt.SCOPE_USER:
        return orders.filter(user=halt.user_id)
    if halt.scope == TradingHalt.SCOPE_BROKER_ACCOUNT:
        return orders.filter(broker_account=halt.broker_account_id)
    return orders


def position_snapshots_for(user: User) -> QuerySet[PositionSnapshot]:
    return PositionSnapshot.objects.filter(user=user)


# --- the account as its broker reports it (read through, never stored) -------------


def account_at_broker(broker_account: BrokerAccount) -> types.Account:
    return broker_for(broker_account).get_account()


def positions_at_broker(broker_account: BrokerAccount) -> list[types.Position]:
    return broker_for(broker_account).list_positions()


def desk_at_broker(
    broker_account: BrokerAccount,
) -> tuple[types.Account, list[types.Position], types.Clock]:
    """What the dashboard shows of the broker: the account, its positions and the clock."""
    broker = broker_for(broker_account)
    account, positions = broker.get_account_and_positions()
    return account, positions, broker.get_clock()


def awaiting_approval() -> QuerySet[Order]:
    """Orders waiting for an operator's approval, oldest first (the approval queue)."""
    return (
        Order.objects.filter(status=PENDING_APPROVAL)
        .select_related("user", "broker_account")
        .order_by("created_at", "id")
    )


def templates_for(user: User) -> QuerySet[OrderTemplate]:
    """The user's order templates by name."""
    return OrderTemplate.objects.filter(owner=user).order_by("name", "id")


def template_for(user: User, template_id: object) -> OrderTemplate:
    """One of the caller's own templates (404 for anyone else's, never 403)."""
    try:
        return OrderTemplate.objects.select_related("owner").get(
            owner=user, pk=int(str(template_id))
        )
    except (OrderTemplate.DoesNotExist, ValueError, OverflowError):
        raise Http404("No such order template.") from None


class ApprovalQueue(NamedTuple):
    waiting: int
    oldest: Order | None


def approval_queue_summary() -> ApprovalQueue:
    """How many orders wait for approval, and the one waiting longest."""
    queue = awaiting_approval()
    return ApprovalQueue(queue.count(), queue.first())


def active_halts() -> QuerySet[TradingHalt]:
    """Every kill switch in force, newest first, with what it covers and who set it."""
    return (
        TradingHalt.objects.filter(active=True)
        .select_related("user", "broker_account", "created_by")
        .order_by("-created_at", "-pk")
    )


def lost_orders(since: datetime) -> QuerySet[Order]:
    """Orders that never reached the broker (ended `rejected` with a `lost` event at or after
    `since`), latest first. Narrowed by status and time before the events are joined."""
    return (
        Order.objects.filter(status="rejected", failed_at__gte=since, events__event="lost")
        .select_related("user", "broker_account")
        .order_by("-failed_at", "-pk")
    )
