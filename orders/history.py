"""Selectors for the order history and position history pages.

The history is paged by keyset on (created_at, id), newest first: the cost of a page
does not grow with how deep the trader has scrolled, unlike OFFSET.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import User

from .filters import STATUS_GROUPS
from .models import Order, PositionSnapshot
from .selectors import orders_for

PAGE_SIZE = 50


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class OrderFilters:
    status: str = "all"  # all | open | closed | one of models.STATUSES
    symbol: str = ""
    side: str = ""
    after: date | None = None  # inclusive, UTC day
    before: date | None = None  # inclusive, UTC day


@dataclass
class OrderPage:
    orders: list[Order]
    next_cursor: str | None


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def filtered_orders(user: User, filters: OrderFilters) -> QuerySet[Order]:
    orders = orders_for(user)
    if filters.status in STATUS_GROUPS:
        orders = orders.filter(STATUS_GROUPS[filters.status])
    elif filters.status != "all":
        orders = orders.filter(status=filters.status)
    if filters.symbol:
        orders = orders.filter(symbol=filters.symbol)
    if filters.side:
        orders = orders.filter(side=filters.side)
    if filters.after:
        orders = orders.filter(created_at__gte=_day_start(filters.after))
    if filters.before and filters.before < date.max:  # up to date.max: no upper bound
        orders = orders.filter(created_at__lt=_day_start(filters.before + timedelta(days=1)))
    return orders.order_by("-created_at", "-id")


def encode_cursor(order: Order) -> str:
    raw = f"{order.created_at.isoformat()}|{order.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, pk = raw.split("|")
        created_at = datetime.fromisoformat(created)
        if created_at.tzinfo is None:
            raise ValueError("naive time")
        return created_at, int(pk)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadCursor("That page link is not valid.") from error


def order_history_page(
    user: User, filters: OrderFilters, cursor: str = "", page_size: int | None = None
) -> OrderPage:
    """One page of the filtered history, strictly older than the cursor's (created_at, id)."""
    page_size = page_size or PAGE_SIZE
    orders = filtered_orders(user, filters).select_related("broker_account")
    if cursor:
        created_at, pk = decode_cursor(cursor)
        orders = orders.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, pk__lt=pk))
    rows = list(orders[: page_size + 1])
    has_more = len(rows) > page_size
    rows = rows[:page_size]
    return OrderPage(orders=rows, next_cursor=encode_cursor(rows[-1]) if has_more else None)


def snapshot_symbols(user: User) -> list[str]:
    return list(
        PositionSnapshot.objects.filter(user=user)
        .order_by("symbol")
        .values_list("symbol", flat=True)
        .distinct()
    )


def position_series(user: User, symbol: str, since: datetime) -> list[dict]:
    """Market value and unrealized P&L of one symbol over time (oldest first)."""
    return list(
        PositionSnapshot.objects.filter(user=user, symbol=symbol, snapshot_at__gte=since)
        .order_by("snapshot_at")
        .values("snapshot_at", "market_value", "unrealized_pl")
    )


def default_since(days: int) -> datetime:
    return timezone.now() - timedelta(days=days)
