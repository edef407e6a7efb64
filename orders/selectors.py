from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from django.db.models import Q, QuerySet
from django.http import Http404

from accounts.models import BrokerAccount, User
from accounts.services import broker_for
from tradedesk.broker import types

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


def active_trading_halts(user: User, broker_account: BrokerAccount) -> list[TradingHalt]:
    """The kill switches that apply to this user's orders on this account, `halted` first."""
    halts = TradingHalt.objects.filter(active=True).filter(
        Q(scope=TradingHalt.SCOPE_DESK)
        | Q(scope=TradingHalt.SCOPE_USER, user=user)
        | Q(scope=TradingHalt.SCOPE_BROKER_ACCOUNT, broker_account=broker_account)
    )
    return sorted(halts, key=lambda halt: (halt.mode != TradingHalt.MODE_HALTED, halt.pk))


def open_orders() -> QuerySet[Order]:
    """Orders that can still trade, as the desk last saw them: any status but a terminal one
    (a status the desk has not seen before counts as open until the broker says otherwise)."""
    return Order.objects.exclude(status__in=types.TERMINAL_STATUSES)


def exposure_orders(broker_account: BrokerAccount, symbol: str) -> list[Order]:
    """The account's orders that can still trade in `symbol`, and its open orders in any
    symbol the broker has not confirmed yet, as the desk last saw them (one query). A status
    the desk doesn't know counts as open until the broker says otherwise."""
    return list(
        open_orders()
        .filter(broker_account=broker_account)
        .filter(Q(symbol=symbol) | Q(broker_order_id=""))
        .order_by("created_at", "id")
    )


def unconfirmed_orders(broker_account: BrokerAccount | None = None) -> QuerySet[Order]:
    """Orders recorded as pending whose broker answer never came (see Order.is_unconfirmed),
    oldest first; all accounts' when none is given."""
    orders = Order.objects.filter(status="pending_new", broker_order_id="")
    if broker_account is not None:
        orders = orders.filter(broker_account=broker_account)
    return orders.select_related("broker_account").order_by("created_at", "id")


class Execution(NamedTuple):
    symbol: str
    side: str  # buy | sell
    qty: Decimal
    at: datetime


def fills_since(broker_account: BrokerAccount, since: datetime) -> list[Execution]:
    """The account's executions at or after `since`, oldest first (tuples, not models: a busy
    day has hundreds).

    Each rise of an order's filled qty in its OrderEvents is one execution at that event's
    time, so a partial fill counts even when the order is canceled afterwards (it never gets
    a filled_at); a fill no event carries (a row written without one) is taken at filled_at.
    Two indexed reads: the account's orders with fills changed since `since`
    (order_account_filled; a fill always moves updated_at), then their events.
    """
    orders = {
        row.id: row
        for row in Order.objects.filter(
            broker_account=broker_account,
            filled_qty__gt=0,
            updated_at__gte=since,
            side__in=types.ORDER_SIDES,  # an mleg order's executions are its legs'
        ).values_list("id", "symbol", "side", "filled_qty", "filled_at", named=True)
    }
    events = (
        OrderEvent.objects.filter(order_id__in=orders, filled_qty__gt=0)
        .order_by("order_id", "at", "id")
        .values_list("order_id", "filled_qty", "at")
    )
    recorded: dict[int, Decimal] = defaultdict(Decimal)
    executions: list[tuple[datetime, int, Decimal]] = []
    for order_id, filled_qty, at in events:
        if filled_qty > recorded[order_id]:
            executions.append((at, order_id, filled_qty - recorded[order_id]))
            recorded[order_id] = filled_qty
    for order in orders.values():
        rest = order.filled_qty - recorded[order.id]
        if rest > 0 and order.filled_at is not None:
            executions.append((order.filled_at, order.id, rest))
    executions.sort()
    return [
        Execution(orders[order_id].symbol, orders[order_id].side, qty, at)
        for at, order_id, qty in executions
        if at >= since
    ]


def orders_placed_since(user: User, since: datetime) -> int:
    """How many orders (legs not counted) the user placed through the desk at or after `since`.

    Orders brought in by the sync or the stream (both `placed_via="sync"`) were placed
    elsewhere or long ago: a newly linked account's history doesn't use up the day's
    MAX_DAILY_TRADES.
    """
    return (
        Order.objects.filter(user=user, parent__isnull=True, created_at__gte=since)
        .exclude(placed_via="sync")
        .count()
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
