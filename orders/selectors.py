from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet
from django.http import Http404

from accounts.models import BrokerAccount, User
from tradedesk.broker import types

from .models import Order, PositionSnapshot, TradingHalt


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


def exposure_orders(broker_account: BrokerAccount, symbol: str) -> list[Order]:
    """The account's orders that can still trade in `symbol`, and its open orders in any
    symbol the broker has not confirmed yet, as the desk last saw them (one query). A status
    the desk doesn't know counts as open until the broker says otherwise."""
    return list(
        Order.objects.filter(broker_account=broker_account)
        .exclude(status__in=types.TERMINAL_STATUSES)
        .filter(Q(symbol=symbol) | Q(broker_order_id=""))
        .order_by("created_at", "id")
    )


def fills_since(broker_account: BrokerAccount, since: datetime) -> list:
    """The account's fills completed at or after `since`, oldest first: rows with symbol, side,
    filled_qty and filled_at (tuples, not models: a busy day has hundreds)."""
    return list(
        Order.objects.filter(broker_account=broker_account, filled_qty__gt=0, filled_at__gte=since)
        .order_by("filled_at", "id")
        .values_list("symbol", "side", "filled_qty", "filled_at", named=True)
    )


def orders_placed_since(user: User, since: datetime) -> int:
    """How many orders (legs not counted) the user placed at or after `since`."""
    return Order.objects.filter(user=user, parent__isnull=True, created_at__gte=since).count()


def open_orders_under(halt: TradingHalt) -> QuerySet[Order]:
    """The open orders a kill switch covers: the whole desk's, one user's or one account's."""
    orders = Order.objects.filter(status__in=types.OPEN_STATUSES).select_related(
        "user", "broker_account"
    )
    if halt.scope == TradingHalt.SCOPE_USER:
        return orders.filter(user=halt.user_id)
    if halt.scope == TradingHalt.SCOPE_BROKER_ACCOUNT:
        return orders.filter(broker_account=halt.broker_account_id)
    return orders


def position_snapshots_for(user: User) -> QuerySet[PositionSnapshot]:
    return PositionSnapshot.objects.filter(user=user)
