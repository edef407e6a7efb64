"""The paper exchange's matching engine: open orders against the simulated market.

Matching is lazy: whoever touches an account brings its orders up to `now`. Time since the
account was last matched is walked minute by minute (bounded by SIM_MATCH_LOOKBACK_MINUTES)
using the market's high/low over each span, so a limit or stop crossed while nobody looked
still fills, at its price and at that time. The instant `now` itself is matched against the
live quote: one fill per quote second, no larger than the quoted size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from django.conf import settings

from tradedesk import rows
from tradedesk.broker import calendar, types

from . import ledger, market
from .models import SimAccount, SimOrder, SimOrderEvent, SimPosition

QTY_STEP = Decimal("0.000000001")
# Closer than this to the last match, an order is matched against the live quote only.
_LIVE_GAP = timedelta(seconds=2)
_AUCTION_TIFS = ("opg", "cls")
_IMMEDIATE_TIFS = ("ioc", "fok")


@dataclass(frozen=True)
class Observation:
    """What an order could trade against: its touch price over [start, at], and the size.

    A fill happens at `at` (for a span: by the end of the minute the price crossed in).
    """

    start: datetime
    at: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    size: Decimal | None  # None: a span of time, in which the whole remainder can trade
    quote_at: datetime | None = None


def live_observation(order: SimOrder, at: datetime) -> Observation:
    quote = market.quote(order.symbol, at)
    buy = order.side == "buy"
    touch = quote.ask_price if buy else quote.bid_price
    return Observation(
        start=at,
        at=at,
        open=touch,
        high=touch,
        low=touch,
        size=quote.ask_size if buy else quote.bid_size,
        quote_at=quote.timestamp,
    )


def _span_observation(order: SimOrder, start: datetime, end: datetime) -> Observation:
    open_, high, low = market.span(order.symbol, start, end)
    return Observation(start=start, at=end, open=open_, high=high, low=low, size=None)


# --- events and state changes -------------------------------------------------
# Trade updates recorded inside `journaled()`, written together when it ends.
_journal: ContextVar[list[SimOrderEvent] | None] = ContextVar("sim_journal", default=None)


@contextlib.contextmanager
def journaled() -> Iterator[None]:
    """Write the block's trade updates in one INSERT as it ends (in the order recorded, so
    their ids still order them); nothing if it raises. The orders they name must be stored
    by then."""
    events: list[SimOrderEvent] = []
    token = _journal.set(events)
    try:
        yield
    finally:
        _journal.reset(token)
    rows.insert(events)


def record(order: SimOrder, event: str, at: datetime, **values) -> SimOrderEvent:
    """Write one trade update, with the order as it stands after it (inside `journaled()`:
    when the block ends)."""
    update = SimOrderEvent(
        account_id=order.account_id,
        order=order,
        event=event,
        at=at,
        order_status=order.status,
        order_qty=order.qty,
        order_filled_qty=order.filled_qty,
        order_filled_avg_price=order.filled_avg_price,
        **values,
    )
    journal = _journal.get()
    if journal is None:
        rows.insert([update])
    else:
        journal.append(update)
    return update


def _save(order: SimOrder, *fields: str) -> None:
    """Store changed fields of an order; one placed in this transaction and not inserted yet
    is written whole when it is (match_placed), its changes included."""
    if not order._state.adding:
        rows.save_columns(order, *fields)


def close(order: SimOrder, status: str, at: datetime, *changed: str) -> None:
    """End an order (canceled, expired, replaced) and whatever depends on it; `changed`
    names other fields the caller changed, stored with it."""
    order.status = status
    order.updated_at = at
    setattr(order, f"{status}_at", at)
    _save(order, "status", "updated_at", f"{status}_at", *changed)
    record(order, status, at)
    # Legs still waiting for their entry can never become active now (a simple order has none).
    for leg in _held_legs(order):
        close(leg, "canceled", at)


def _held_legs(order: SimOrder) -> list[SimOrder]:
    if order.order_class == "simple":
        return []
    return list(order.legs.filter(status="held"))


def oco_group(order: SimOrder) -> list[SimOrder]:
    """The open orders that exit the same position as `order` (one-cancels-other)."""
    if order.order_class == "oco":
        root_id = order.parent_id or order.id
        group = SimOrder.objects.filter(pk=root_id) | SimOrder.objects.filter(parent_id=root_id)
    elif order.order_class in ("bracket", "oto") and order.parent_id is not None:
        group = SimOrder.objects.filter(parent_id=order.parent_id)
    else:
        return []
    return list(group.exclude(pk=order.pk).filter(status__in=types.OPEN_STATUSES))


def _apply_to_position(account: SimAccount, symbol: str, signed: Decimal, price: Decimal):
    """Move the (locked) account's position and cash; the account row is stored by whoever
    matched (match_account, match_placed), once for all of its fills."""
    positions = ledger.positions_by_symbol(account)
    position = positions.get(symbol)
    opened = position is None
    if opened:
        position = positions[symbol] = SimPosition(
            account=account, symbol=symbol, qty=Decimal("0"), avg_entry_price=Decimal("0")
        )
    new_qty = position.qty + signed
    if position.qty == 0 or (new_qty != 0 and (new_qty > 0) != (position.qty > 0)):
        position.avg_entry_price = price  # opened, or flipped between long and short
    elif (signed > 0) == (position.qty > 0):
        position.avg_entry_price = (
            position.qty * position.avg_entry_price + signed * price
        ) / new_qty
    # Reducing a position leaves its average entry price as it was.
    position.qty = new_qty
    if opened:
        rows.insert([position])
    else:
        rows.save_columns(position, "qty", "avg_entry_price")
    account.cash -= signed * price
    return new_qty


def fill(
    account: SimAccount,
    order: SimOrder,
    qty: Decimal,
    price: Decimal,
    at: datetime,
    quote_at: datetime | None,
) -> None:
    signed = qty if order.side == "buy" else -qty
    position_qty = _apply_to_position(account, order.symbol, signed, price)

    filled_before = order.filled_qty
    order.filled_qty = filled_before + qty
    order.filled_avg_price = (
        filled_before * (order.filled_avg_price or 0) + qty * price
    ) / order.filled_qty
    order.last_fill_quote_at = quote_at
    order.updated_at = at
    done = order.filled_qty >= order.qty
    order.status = "filled" if done else "partially_filled"
    if done:
        order.filled_at = at
    # qty too: a notional order's is fixed at its first fill (_fill_qty).
    _save(
        order,
        "qty",
        "filled_qty",
        "filled_avg_price",
        "last_fill_quote_at",
        "updated_at",
        "status",
        "filled_at",
    )
    record(
        order,
        "fill" if done else "partial_fill",
        at,
        price=price,
        qty=qty,
        position_qty=position_qty,
    )
    if done:
        for leg in _held_legs(order):
            leg.status = "new"
            leg.active_at = leg.updated_at = at
            _save(leg, "status", "active_at", "updated_at")
            record(leg, "new", at)
    # What one exit sold, its siblings no longer need to: shrink them, cancel the used up.
    for sibling in oco_group(order):
        remaining = sibling.qty - qty
        if remaining <= sibling.filled_qty:
            close(sibling, "canceled", at)
        else:
            sibling.qty = remaining
            _save(sibling, "qty")


# --- per-order rules ------------------------------------------------------------
def expiry(order: SimOrder) -> datetime | None:
    """When an unfilled order stops working."""
    if order.time_in_force == "day":
        return calendar.session_close(order.submitted_at)
    if order.time_in_force == "gtc":
        return calendar.session_close(order.submitted_at + timedelta(days=settings.SIM_GTC_DAYS))
    return None


def auction_time(order: SimOrder) -> datetime:
    """The auction an opg (next open) or cls (the session's close) order executes in."""
    if order.time_in_force == "opg":
        return calendar.next_open(order.submitted_at)
    return calendar.session_close(order.submitted_at)


def _trading(order: SimOrder, at: datetime) -> bool:
    return calendar.is_open(at) or (order.extended_hours and calendar.is_extended_session(at))


def _trail_stop(order: SimOrder) -> Decimal:
    """The trailing stop's trigger price from its high- (sell) or low-water (buy) mark."""
    if order.trail_percent is not None:
        distance = order.hwm * order.trail_percent / 100
    else:
        distance = order.trail_price
    stop = order.hwm - distance if order.side == "sell" else order.hwm + distance
    return stop.quantize(Decimal("0.01") if stop >= 1 else Decimal("0.0001"))


def start_trailing(order: SimOrder, price: Decimal) -> None:
    order.hwm = price
    order.stop_price = _trail_stop(order)


def _trigger_price(order: SimOrder, seen: Observation) -> Decimal | None:
    """The price a stop triggers at in `seen`, or None if it was not reached."""
    if order.side == "sell":
        return min(seen.open, order.stop_price) if seen.low <= order.stop_price else None
    return max(seen.open, order.stop_price) if seen.high >= order.stop_price else None


def _limit_price_reached(order: SimOrder, seen: Observation) -> Decimal | None:
    if order.side == "buy":
        return min(seen.open, order.limit_price) if seen.low <= order.limit_price else None
    return max(seen.open, order.limit_price) if seen.high >= order.limit_price else None


def execution_price(order: SimOrder, seen: Observation) -> Decimal | None:
    """The price this order trades at in `seen`, or None; triggers stops on the way."""
    if order.type in ("stop", "stop_limit", "trailing_stop") and order.triggered_at is None:
        triggered = _trigger_price(order, seen)
        if triggered is None:
            if order.type == "trailing_stop":
                sell = order.side == "sell"
                mark = max(order.hwm, seen.high) if sell else min(order.hwm, seen.low)
                if mark != order.hwm:
                    order.hwm = mark
                    order.stop_price = _trail_stop(order)
                    _save(order, "hwm", "stop_price")
            return None
        order.triggered_at = seen.at
        _save(order, "triggered_at")
        # From the trigger on, the order works from the trigger price.
        seen = dataclasses.replace(seen, open=triggered)
        if order.type != "stop_limit":
            return triggered
    if order.type in ("limit", "stop_limit"):
        return _limit_price_reached(order, seen)
    return seen.open


def _fill_qty(order: SimOrder, price: Decimal, available: Decimal | None) -> Decimal:
    if order.qty is None:  # notional: the quantity is fixed at the first fill
        order.qty = (order.notional / price).quantize(QTY_STEP, rounding=ROUND_DOWN)
    remaining = order.qty - order.filled_qty
    return remaining if available is None else min(remaining, available)


def _auction(account: SimAccount, order: SimOrder, now: datetime) -> None:
    at = auction_time(order)
    if now < at:
        return
    price = market.auction_price(order.symbol, at)
    marketable = order.type == "market" or (
        price <= order.limit_price if order.side == "buy" else price >= order.limit_price
    )
    if marketable:
        fill(account, order, _fill_qty(order, price, None), price, at, None)
    else:  # Alpaca cancels what the auction did not fill
        close(order, "canceled", at)


def step(account: SimAccount, order: SimOrder, seen: Observation) -> bool:
    """Expire, release, trigger or fill one open order at what the market showed in `seen`.

    Returns whether the order traded or closed (which can change its siblings and legs).
    """
    if order.time_in_force in _AUCTION_TIFS:
        _auction(account, order, seen.at)
        return order.status not in types.OPEN_STATUSES
    deadline = expiry(order)
    if deadline is not None and seen.start >= deadline:
        close(order, "expired", deadline)
        return True
    if not _trading(order, seen.start):
        return False
    if order.status == "accepted":
        order.status = "new"
        _save(order, "status")
    immediate = order.time_in_force in _IMMEDIATE_TIFS
    if immediate and seen.size is None:
        # ioc/fok get one look, at the quote when they first can trade.
        seen = live_observation(order, seen.start)
    if seen.quote_at is not None and order.last_fill_quote_at == seen.quote_at:
        return False
    price = execution_price(order, seen)
    qty = _fill_qty(order, price, seen.size) if price is not None else Decimal("0")
    if order.time_in_force == "fok" and qty < order.qty - order.filled_qty:
        qty = Decimal("0")  # all or nothing
    if qty > 0:
        fill(account, order, qty, price, seen.at, seen.quote_at)
    if immediate and order.status != "filled":
        close(order, "canceled", seen.at)
    return qty > 0 or order.status not in types.OPEN_STATUSES


# --- the account's timeline ------------------------------------------------------
def _minutes(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """[start, end) cut at minute boundaries."""
    at = start
    while at < end:
        boundary = at.replace(second=0, microsecond=0) + timedelta(minutes=1)
        yield at, min(boundary, end)
        at = min(boundary, end)


def _working_since(account: SimAccount, order: SimOrder, earliest: datetime) -> datetime:
    since = order.active_at or order.submitted_at
    if account.matched_at is not None:
        since = max(since, account.matched_at)
    return max(since, earliest)


def _workable(order: SimOrder) -> bool:
    return order.status in types.OPEN_STATUSES and order.status != "held"


def match_account(
    account: SimAccount,
    now: datetime,
    *,
    store: bool = True,
    open_orders: list[SimOrder] | None = None,
) -> list[SimOrder]:
    """Bring every open order of a (locked) account up to `now`; returns those still open.
    `open_orders`: the account's, oldest first, as read with its lock (else read here).

    The account row (its cash after fills, `matched_at`) is stored unless `store` is False:
    then the caller stores it with its own changes (match_placed)."""
    if open_orders is None:
        found = rows.instances(_open_orders_sql(), [account.pk, *_OPEN], SimOrder)
        open_orders = [order for (order,) in found]
    orders = open_orders
    if not orders:
        # Nothing to bring up to date, nor to remember: an order placed later works from its
        # own active_at, which is later than any matched_at this could write.
        return []
    earliest = now - timedelta(minutes=settings.SIM_MATCH_LOOKBACK_MINUTES)
    stale = [
        order
        for order in orders
        if _workable(order) and now - _working_since(account, order, earliest) > _LIVE_GAP
    ]
    if stale:
        gap_start = min(_working_since(account, order, earliest) for order in stale)
        for start, end in _minutes(gap_start, now):
            orders = _step_all(
                account,
                orders,
                lambda order, start=start, end=end: _span_observation(
                    order, max(start, _working_since(account, order, earliest)), end
                ),
                lambda order, end=end: _working_since(account, order, earliest) < end,
            )
    orders = _step_all(
        account, orders, lambda order: live_observation(order, now), lambda order: True
    )
    account.matched_at = now
    if store:
        _store_account(account)
    return [order for order in orders if order.status in types.OPEN_STATUSES]


_OPEN = sorted(types.OPEN_STATUSES)


@functools.cache
def _open_orders_sql() -> str:
    """match_account's read (the account's open orders, oldest first), built once: the ORM
    took longer to build it than the database to run it."""
    order, quoted = SimOrder._meta, rows.quoted

    def column(name: str) -> str:
        return f"o.{quoted(order.get_field(name).column)}"

    statuses = ", ".join(["%s"] * len(_OPEN))
    return (
        f"SELECT {rows.shape(SimOrder).columns('o')} FROM {quoted(order.db_table)} o"  # noqa: S608
        f" WHERE {column('account')} = %s AND {column('status')} IN ({statuses})"
        f" ORDER BY {column('created_at')}"
    )


def _store_account(account: SimAccount) -> None:
    rows.save_columns(account, "cash", "matched_at")


def match_placed(account: SimAccount, placed: list[SimOrder], now: datetime) -> list[SimOrder]:
    """Match orders just placed at `now` in an account whose book was matched at `now`
    (match_account with store=False), then store them and the account.

    The rest of the book already saw this instant's quote, and a new order trades only
    against the market, so only the new order (and legs its fill releases) can trade. A
    simple order not inserted yet is inserted as it ends up (filled, say): one write.
    Returns the orders as stored.
    """
    stepped = _step_all(
        account, placed, lambda order: live_observation(order, now), lambda order: True
    )
    rows.insert([order for order in stepped if order._state.adding])
    account.matched_at = now
    _store_account(account)
    return stepped


def _step_all(account, orders, observe, due) -> list[SimOrder]:
    """Step each workable, due order; a fill or close of an order with legs or OCO siblings
    reloads the rest (what it changed of them is in the database)."""
    for index in range(len(orders)):
        order = orders[index]
        if (
            _workable(order)
            and due(order)
            and step(account, order, observe(order))
            and order.order_class != "simple"
        ):
            orders = _reloaded(orders)
    return orders


def _reloaded(orders: list[SimOrder]) -> list[SimOrder]:
    fresh = SimOrder.objects.in_bulk([order.pk for order in orders])
    return [fresh[order.pk] for order in orders]
