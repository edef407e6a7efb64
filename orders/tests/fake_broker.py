"""An in-memory broker for sync tests, paging like Alpaca.

Alpaca keeps nanoseconds; the desk sees microseconds. `after` is exclusive at the broker's
nanosecond precision, so asking for "after the last timestamp I saw" returns that order again:
the trap a pager must survive.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tradedesk.broker.base import Broker
from tradedesk.broker.errors import OrderNotFound
from tradedesk.broker.types import BrokerOrder, Position

EPOCH = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)


def _ns(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def at_ns(ns: int) -> datetime:
    """The microsecond timestamp the desk sees for a broker time of `ns` after EPOCH."""
    return EPOCH + timedelta(microseconds=ns // 1000)


def broker_order(number: int, *, submitted_ns: int | None = None, **fields) -> BrokerOrder:
    submitted = at_ns(number * 1000 if submitted_ns is None else submitted_ns)
    values = {
        "id": f"00000000-0000-4000-8000-{number:012d}",
        "client_order_id": f"client-{number}",
        "symbol": "AAPL",
        "side": "buy",
        "type": "limit",
        "time_in_force": "day",
        "status": "new",
        "created_at": submitted,
        "updated_at": submitted,
        "submitted_at": submitted,
        "qty": Decimal("10"),
        "limit_price": Decimal("190.5"),
    }
    return BrokerOrder(**(values | fields))


class FakeBroker(Broker):
    provider = "fake"

    def __init__(self, orders: Iterable[tuple[int, BrokerOrder]] = (), positions=()):
        self.orders: dict[str, tuple[int, BrokerOrder]] = {}
        self.positions: list[Position] = list(positions)
        self.pages_served = 0
        self._ordered: list[tuple[int, BrokerOrder]] | None = None
        self.before_page: Callable[[int], None] | None = None
        for submitted_ns, order in orders:
            self.put(order, submitted_ns=submitted_ns)

    def put(self, order: BrokerOrder, *, submitted_ns: int | None = None) -> None:
        """Add or change an order (a change keeps its submission time)."""
        if submitted_ns is None:
            submitted_ns = self.orders[order.id][0] if order.id in self.orders else 0
        self.orders[order.id] = (submitted_ns, order)
        self._ordered = None

    def change(self, order_id: str, **fields) -> BrokerOrder:
        submitted_ns, order = self.orders[order_id]
        changed = dataclasses.replace(order, **fields)
        self.orders[order_id] = (submitted_ns, changed)
        self._ordered = None
        return changed

    def list_orders(
        self,
        *,
        status: str = "all",
        after: datetime | None = None,
        until: datetime | None = None,
        limit: int = 500,
        direction: str = "asc",
        symbols: Iterable[str] | None = None,
    ) -> list[BrokerOrder]:
        assert (status, until, direction, symbols) == ("all", None, "asc", None)
        if self.before_page is not None:
            self.before_page(self.pages_served)
        self.pages_served += 1
        after_ns = -1 if after is None else _ns(after)
        if self._ordered is None:
            self._ordered = sorted(self.orders.values(), key=lambda e: (e[0], e[1].id))
        start = bisect.bisect_right(self._ordered, after_ns, key=lambda entry: entry[0])
        return [order for _, order in self._ordered[start : start + min(limit, 500)]]

    def list_positions(self) -> list[Position]:
        return list(self.positions)

    def get_order(self, order_id: str) -> BrokerOrder:
        try:
            return self.orders[order_id][1]
        except KeyError:
            raise OrderNotFound("order not found") from None

    def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder:
        for _, order in self.orders.values():
            if order.client_order_id == client_order_id:
                return order
        raise OrderNotFound("order not found")

    def _unused(self, *args, **kwargs):
        raise NotImplementedError("not needed by the sync tests")

    get_account = get_clock = get_asset = list_assets = submit_order = _unused
    cancel_order = replace_order = _unused
    cancel_all_orders = close_position = close_all_positions = list_fill_activities = _unused
    get_latest_quotes = get_latest_trades = get_bars = _unused
