"""The paper exchange: Alpaca's paper-trading behaviour over the simulated market.

State lives in the sim models; every call first brings the account's open orders up to
date against the market at `now` (lazy matching), so a resting order fills in whichever
process touches the account next, and the stream process touches every account each second.
What an account is worth and may spend is the ledger's (`ledger.py`); which requests Alpaca
refuses, and how, is `rules.py`'s.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Prefetch
from django.utils import timezone

from tradedesk import rows
from tradedesk.broker import calendar, types
from tradedesk.broker.base import Broker
from tradedesk.broker.errors import (
    AuthenticationFailed,
    BrokerError,
    NotCancelable,
    OrderNotFound,
    OrderRejected,
)
from tradedesk.broker.types import (
    Account,
    Asset,
    Bar,
    BrokerOrder,
    CancelResult,
    Clock,
    ClosePositionResult,
    FillActivity,
    LegRequest,
    OrderRequest,
    OrderUpdate,
    Position,
    Quote,
    ReplaceRequest,
    Trade,
)

from . import ledger, market, matching, rules
from .matching import close, record
from .models import SimAccount, SimOrder, SimOrderEvent, SimPosition
from .universe import ASSETS

_MAX_BARS = 10_000


def open_account(starting_cash: Decimal | None = None) -> str:
    """Create a funded paper account; returns its account id (the broker account's key id)."""
    account = SimAccount.objects.create(
        account_id=str(uuid.uuid4()),
        cash=settings.SIM_STARTING_CASH if starting_cash is None else starting_cash,
    )
    return account.account_id


# Legs share their parent's creation time: take-profit (limit) before stop-loss (stop,
# stop_limit), as Alpaca lists them.
_LEG_ORDER = ("created_at", "type")
_ORDERED_LEGS = SimOrder.objects.order_by(*_LEG_ORDER)


def _to_broker_order(order: SimOrder, legs: Iterable[SimOrder] = ()) -> BrokerOrder:
    return BrokerOrder(
        id=str(order.id),
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=order.side,
        type=order.type,
        time_in_force=order.time_in_force,
        status=order.status,
        created_at=order.created_at,
        updated_at=order.updated_at,
        asset_id=ASSETS[order.symbol].id if order.symbol in ASSETS else "",
        order_class=order.order_class,
        qty=order.qty,
        notional=order.notional,
        filled_qty=order.filled_qty,
        filled_avg_price=order.filled_avg_price,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        trail_price=order.trail_price,
        trail_percent=order.trail_percent,
        hwm=order.hwm,
        extended_hours=order.extended_hours,
        submitted_at=order.submitted_at,
        filled_at=order.filled_at,
        canceled_at=order.canceled_at,
        expired_at=order.expired_at,
        failed_at=order.failed_at,
        replaced_at=order.replaced_at,
        replaced_by=str(order.replaced_by) if order.replaced_by else None,
        replaces=str(order.replaces) if order.replaces else None,
        legs=tuple(_to_broker_order(leg) for leg in legs),
    )


class SimBroker(Broker):
    provider = "sim"

    def __init__(self, account_id: str, now: Callable[[], datetime] | None = None):
        self.account_id = account_id
        self._now = now or timezone.now
        self._after_submit: tuple[Account, list[Position], float] | None = None

    # --- provider capabilities ------------------------------------------------
    def is_market_open(self, at: datetime) -> bool:
        return calendar.is_open(at)  # the demo setting: around the clock

    @classmethod
    def periodic_work(cls) -> int:
        return process_open_orders()

    # --- helpers ----------------------------------------------------------
    def _account(self, *, lock: bool = False) -> SimAccount:
        """The account, locked for a change (its positions read with it); unlocked,
        annotated with `has_open_orders`."""
        if lock:
            return self._locked_account()
        open_orders = SimOrder.objects.filter(
            account=OuterRef("pk"), status__in=types.OPEN_STATUSES
        )
        queryset = SimAccount.objects.annotate(has_open_orders=Exists(open_orders))
        try:
            return queryset.get(account_id=self.account_id)
        except SimAccount.DoesNotExist:
            raise AuthenticationFailed("unknown paper-exchange account") from None

    def _locked_account(self) -> SimAccount:
        """The account row locked, and its position rows with it in one read (a LEFT JOIN),
        where every change would read both. Where rows are locked, the lock is taken first:
        a locking read that waited would see the positions as they were when it began
        (PostgreSQL re-reads only the locked row). SQLite's IMMEDIATE transactions hold the
        whole database already."""
        account, _ = self._locked_book(with_open_orders=False)
        return account

    def _locked_book(self, *, with_open_orders: bool = True) -> tuple[SimAccount, list[SimOrder]]:
        """_locked_account, and the account's open orders oldest first in the same read (a
        UNION ALL after the positions' rows) for a caller that matches them at once."""
        lock, read = _locked_account_sql(with_open_orders)
        if connection.features.has_select_for_update:
            with connection.cursor() as cursor:
                cursor.execute(lock, [self.account_id])
        params = [self.account_id, *([self.account_id, *_OPEN] if with_open_orders else [])]
        found = rows.instances(read, params, SimAccount, SimPosition, SimOrder)
        if not found or found[0][0] is None:
            raise AuthenticationFailed("unknown paper-exchange account")
        account = found[0][0]
        # An account with no positions is the join's one row without one (None).
        account._positions = {
            position.symbol: position for _, position, _ in found if position is not None
        }
        return account, [order for _, _, order in found if order is not None]

    def _order(self, account: SimAccount, **lookup) -> SimOrder:
        try:
            return account.orders.get(**lookup)
        except (SimOrder.DoesNotExist, ValueError, TypeError):
            raise OrderNotFound("order not found", code=rules.CODE_NOT_FOUND) from None

    def _with_legs(self, order: SimOrder) -> BrokerOrder:
        return _to_broker_order(order, order.legs.order_by(*_LEG_ORDER))

    # --- matching ---------------------------------------------------------
    def process(self) -> None:
        """Match the account's open orders against the market as it is now."""
        now = self._now()
        with transaction.atomic():
            account, open_orders = self._locked_book()
            matching.match_account(account, now, open_orders=open_orders)

    def _matched(self) -> tuple[SimAccount, list[SimOrder]]:
        """The account and its open orders, matched up to now (what every read starts from)."""
        account = self._account()
        if not account.has_open_orders:
            # Nothing to match: no lock, no write (most reads of a quiet account).
            return account, []
        now = self._now()
        with transaction.atomic():
            account, open_orders = self._locked_book()
            return account, matching.match_account(account, now, open_orders=open_orders)

    def events_after(self, last_event_id: int, limit: int = 500) -> list[tuple[int, OrderUpdate]]:
        """The account's trade updates after `last_event_id`, oldest first (the stream's feed)."""
        account, _ = self._matched()
        return events_after(last_event_id, limit, account=account)

    # --- account ----------------------------------------------------------
    def get_account(self) -> Account:
        account, open_orders = self._matched()
        return ledger.account_view(
            account, ledger.held_positions(account), open_orders, self._now()
        )

    def get_clock(self) -> Clock:
        return calendar.clock(self._now())

    def get_asset(self, symbol: str) -> Asset:
        try:
            return ASSETS[symbol]
        except KeyError:
            raise OrderRejected(
                f"asset not found: {symbol}", code=rules.CODE_NOT_FOUND, http_status=404
            ) from None

    def list_assets(self) -> list[Asset]:
        return list(ASSETS.values())

    def list_positions(self) -> list[Position]:
        account, _ = self._matched()
        return ledger.position_views(ledger.held_positions(account), self._now())

    def get_account_and_positions(self) -> tuple[Account, list[Position]]:
        account, open_orders = self._matched()
        held, now = ledger.held_positions(account), self._now()
        return ledger.account_view(account, held, open_orders, now), ledger.position_views(
            held, now
        )

    def list_fill_activities(
        self,
        *,
        after: datetime | None = None,
        until: datetime | None = None,
        direction: str = "desc",
        page_size: int = 100,
        page_token: str | None = None,
    ) -> list[FillActivity]:
        account, _ = self._matched()
        executions = SimOrderEvent.objects.filter(
            account=account, event__in=types.EXECUTION_EVENTS
        ).select_related("order")
        if after is not None:
            executions = executions.filter(at__gt=after)
        if until is not None:
            executions = executions.filter(at__lt=until)
        # Events are written in time order: the id orders them, and the token is the last id.
        descending = direction == "desc"
        if page_token:
            try:
                last = int(page_token)
            except ValueError:
                raise OrderRejected("invalid page_token", code=rules.CODE_BAD_REQUEST) from None
            executions = (
                executions.filter(id__lt=last) if descending else executions.filter(id__gt=last)
            )
        executions = executions.order_by("-id" if descending else "id")[: min(page_size, 100)]
        return [_to_activity(event) for event in executions]

    # --- orders -------------------------------------------------------------
    def submit_order(self, request: OrderRequest) -> BrokerOrder:
        now = self._now()
        try:
            asset = self.get_asset(request.symbol)
        except OrderRejected:
            # Alpaca's order endpoint answers an unknown symbol with 422, its asset endpoint 404.
            raise OrderRejected(
                f"asset {request.symbol} not found", code=rules.CODE_UNPROCESSABLE
            ) from None
        if not asset.tradable:
            raise OrderRejected(
                f"asset {request.symbol} is not tradable", code=rules.CODE_UNPROCESSABLE
            )
        self._after_submit = None
        try:
            with transaction.atomic(), matching.journaled():
                account, open_orders = self._locked_book()
                # Bring the book up to date first: what is held and committed depends on it.
                open_orders = matching.match_account(
                    account, now, store=False, open_orders=open_orders
                )
                rules.check_submission(account, asset, request, now, open_orders)
                placed = matching.match_placed(account, _create_order(account, request, now), now)
        except IntegrityError:
            raise OrderRejected(
                "client_order_id must be unique", code=rules.CODE_BAD_REQUEST, http_status=422
            ) from None
        committed_at = time.time()
        still_open = [*open_orders, *(o for o in placed if o.status in types.OPEN_STATUSES)]
        held = ledger.held_positions(account)
        self._after_submit = (
            ledger.account_view(account, held, still_open, now),
            ledger.position_views(held, now),
            committed_at,
        )
        order, *legs = placed
        return _to_broker_order(order, legs)

    def account_after_submit(self) -> tuple[Account, list[Position], float] | None:
        return self._after_submit

    def get_order(self, order_id: str) -> BrokerOrder:
        account, _ = self._matched()
        return self._with_legs(self._order(account, id=order_id))

    def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder:
        account, _ = self._matched()
        return self._with_legs(self._order(account, client_order_id=client_order_id))

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
        account, _ = self._matched()
        orders = account.orders.filter(parent__isnull=True)
        if status == "open":
            orders = orders.filter(status__in=types.OPEN_STATUSES)
        elif status == "closed":
            orders = orders.filter(status__in=types.TERMINAL_STATUSES)
        if after is not None:
            orders = orders.filter(submitted_at__gt=after)
        if until is not None:
            orders = orders.filter(submitted_at__lt=until)
        if symbols:
            orders = orders.filter(symbol__in=list(symbols))
        ordering = ("submitted_at", "id") if direction == "asc" else ("-submitted_at", "-id")
        legs = Prefetch("legs", queryset=_ORDERED_LEGS)
        page = list(orders.order_by(*ordering).prefetch_related(legs)[: min(limit, 500)])
        return [_to_broker_order(order, order.legs.all()) for order in page]

    def cancel_order(self, order_id: str) -> None:
        self.process()
        now = self._now()
        with transaction.atomic():
            account = self._account(lock=True)
            order = self._order(account, id=order_id)
            if order.status not in types.OPEN_STATUSES:
                raise NotCancelable(
                    f"order is not cancelable (status {order.status})",
                    code=rules.CODE_UNPROCESSABLE,
                )
            # Canceling an entry cancels its legs; canceling an exit cancels its OCO siblings.
            targets = [order, *order.legs.filter(status__in=types.OPEN_STATUSES)]
            for target in [*targets, *matching.oco_group(order)]:
                target.refresh_from_db()
                if target.status in types.OPEN_STATUSES:
                    close(target, "canceled", now)

    def replace_order(self, order_id: str, request: ReplaceRequest) -> BrokerOrder:
        self.process()
        now = self._now()
        with transaction.atomic():
            account = self._account(lock=True)
            old = self._order(account, id=order_id)
            if old.status not in types.OPEN_STATUSES:
                raise NotCancelable(
                    f"order is not replaceable (status {old.status})", code=rules.CODE_UNPROCESSABLE
                )
            new = SimOrder.objects.get(pk=old.pk)
            new.pk = uuid.uuid4()
            new.client_order_id = request.client_order_id or str(uuid.uuid4())
            new.qty = request.qty if request.qty is not None else old.qty
            new.limit_price = (
                request.limit_price if request.limit_price is not None else old.limit_price
            )
            new.stop_price = (
                request.stop_price if request.stop_price is not None else old.stop_price
            )
            if request.trail is not None:
                if old.trail_percent is not None:
                    new.trail_percent = request.trail
                else:
                    new.trail_price = request.trail
            new.time_in_force = request.time_in_force or old.time_in_force
            if old.status != "held":
                new.status = _initial_status(now)
            new.filled_qty = Decimal("0")
            new.filled_avg_price = None
            new.last_fill_quote_at = None
            new.triggered_at = None
            new.replaces = old.id
            new.replaced_by = None
            new.created_at = new.updated_at = new.submitted_at = now
            new.active_at = None if old.status == "held" else now
            if old.status != "held":  # a waiting exit leg spends nothing until it activates
                rules.check_replacement(account, old, new, now)
            if new.type == "trailing_stop":
                matching.start_trailing(new, market.trade(new.symbol, now).price)
            try:
                with transaction.atomic():
                    new.save(force_insert=True)
            except IntegrityError:
                raise OrderRejected(
                    "client_order_id must be unique", code=rules.CODE_BAD_REQUEST
                ) from None
            old.replaced_by = new.id
            # Legs follow their parent to the new order rather than die with the old one.
            old.legs.update(parent=new)
            close(old, "replaced", now, "replaced_by")
            record(new, "new", now)
        self.process()
        new.refresh_from_db()
        return self._with_legs(new)

    def cancel_all_orders(self) -> list[CancelResult]:
        account, _ = self._matched()
        open_ids = account.orders.filter(status__in=types.OPEN_STATUSES).order_by(
            "submitted_at", "created_at", "type"
        )
        results = []
        for order_id in [str(pk) for pk in open_ids.values_list("id", flat=True)]:
            if not account.orders.filter(id=order_id, status__in=types.OPEN_STATUSES).exists():
                continue  # canceled with its parent or an OCO sibling just now
            results.append(_attempt(self.cancel_order, order_id))
        return results

    def close_position(self, symbol: str) -> BrokerOrder:
        account, open_orders = self._matched()
        position = next((p for p in ledger.held_positions(account) if p.symbol == symbol), None)
        if position is None:
            raise OrderRejected(
                "position does not exist", code=rules.CODE_NOT_FOUND, http_status=404
            )
        side = "sell" if position.qty > 0 else "buy"
        if side == "sell":
            # Alpaca closes only what open sell orders don't already hold (no short opened).
            available = position.qty - ledger.held_for_sells(open_orders, symbol)
            if available < position.qty:
                rules.reject(
                    f"insufficient qty available for order (requested: {position.qty}, "
                    f"available: {max(available, Decimal('0'))})",
                    code=rules.CODE_FORBIDDEN,
                    http_status=403,
                )
        request = OrderRequest(
            symbol=symbol,
            side=side,
            type="market",
            time_in_force="day",
            qty=abs(position.qty),
            client_order_id=str(uuid.uuid4()),
        )
        return self.submit_order(request)

    def close_all_positions(self, *, cancel_orders: bool = False) -> list[ClosePositionResult]:
        if cancel_orders:
            self.cancel_all_orders()
        account, _ = self._matched()
        results = []
        for symbol in sorted(p.symbol for p in ledger.held_positions(account)):
            try:
                order = self.close_position(symbol)
            except OrderRejected as refused:
                results.append(
                    ClosePositionResult(
                        symbol=symbol,
                        status=refused.http_status,
                        code=refused.code,
                        message=refused.message,
                    )
                )
            else:
                results.append(ClosePositionResult(symbol=symbol, status=200, order=order))
        return results

    # --- market data ----------------------------------------------------------
    def _known(self, symbols: Iterable[str]) -> list[str]:
        return [symbol for symbol in symbols if market.is_known(symbol)]

    def get_latest_quotes(self, symbols: Iterable[str]) -> dict[str, Quote]:
        now = self._now()
        return {symbol: market.quote(symbol, now) for symbol in self._known(symbols)}

    def get_latest_trades(self, symbols: Iterable[str]) -> dict[str, Trade]:
        now = self._now()
        return {symbol: market.trade(symbol, now) for symbol in self._known(symbols)}

    def get_bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime | None = None
    ) -> list[Bar]:
        if not market.is_known(symbol):
            return []
        starts = market.bar_starts(timeframe, start, min(end or self._now(), self._now()))
        return [market.bar(symbol, at, timeframe) for at in starts[-_MAX_BARS:]]


def _attempt(cancel: Callable[[str], None], order_id: str) -> CancelResult:
    """One order of a cancel-all, as Alpaca's 207 body reports it."""
    try:
        cancel(order_id)
    except BrokerError as refused:
        status = getattr(refused, "http_status", 404)
        return CancelResult(order_id, status, code=refused.code, message=refused.message)
    return CancelResult(order_id, 200)


def _to_activity(event: SimOrderEvent) -> FillActivity:
    order = event.order
    cum_qty = event.order_filled_qty or Decimal("0")
    # A notional order has no qty to count down from.
    leaves_qty = event.order_qty - cum_qty if event.order_qty is not None else Decimal("0")
    return FillActivity(
        id=str(event.id),
        order_id=str(order.id),
        symbol=order.symbol,
        side=order.side,
        type=event.event,
        price=event.price,
        qty=event.qty,
        cum_qty=cum_qty,
        leaves_qty=leaves_qty,
        transaction_time=event.at,
        order_status=event.order_status,
    )


def _to_update(event: SimOrderEvent) -> OrderUpdate:
    order = dataclasses.replace(
        _to_broker_order(event.order, event.order.legs.all()),
        status=event.order_status or event.order.status,
        qty=event.order_qty,
        filled_qty=event.order_filled_qty
        if event.order_filled_qty is not None
        else event.order.filled_qty,
        filled_avg_price=event.order_filled_avg_price,
    )
    return OrderUpdate(
        event=event.event,
        order=order,
        timestamp=event.at,
        price=event.price,
        qty=event.qty,
        position_qty=event.position_qty,
        # The event's own id: the same as its fill activity's.
        execution_id=str(event.id) if event.event in types.EXECUTION_EVENTS else "",
    )


def latest_event_id() -> int:
    return SimOrderEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def events_after(
    last_event_id: int, limit: int = 500, *, account: SimAccount | None = None
) -> list[tuple[int, OrderUpdate]]:
    """Trade updates after `last_event_id`, oldest first, each naming its account: every paper
    account's (the exchange-wide feed the stream process follows), or one account's."""
    events = SimOrderEvent.objects.filter(id__gt=last_event_id)
    if account is not None:
        events = events.filter(account=account)
    events = (
        events.select_related("order", "account")
        .prefetch_related(Prefetch("order__legs", queryset=_ORDERED_LEGS))
        .order_by("id")[: min(limit, 500)]
    )
    return [
        (event.id, dataclasses.replace(_to_update(event), account_id=event.account.account_id))
        for event in events
    ]


def process_open_orders(now: datetime | None = None) -> int:
    """Match every paper account that has open orders; returns how many were matched.

    The stream process calls this every second and a Celery task every minute, so resting
    orders fill even when no user is looking.
    """
    at = now or timezone.now()
    account_ids = (
        SimAccount.objects.filter(orders__status__in=types.OPEN_STATUSES)
        .values_list("account_id", flat=True)
        .distinct()
    )
    count = 0
    for account_id in account_ids:
        SimBroker(account_id, now=lambda: at).process()
        count += 1
    return count


_OPEN = sorted(types.OPEN_STATUSES)


@functools.cache
def _locked_account_sql(with_open_orders: bool) -> tuple[str, str]:
    """_locked_book's lock of the account row, and its read: the account joined to its
    positions, then (with_open_orders) its open orders, oldest first, in rows of their own
    (the account's and positions' columns NULL in them, theirs NULL in the others; a last
    column puts them after). Built once: the ORM took longer to build them than the
    database to run them."""
    account, position, order = SimAccount._meta, SimPosition._meta, SimOrder._meta
    quoted = rows.quoted
    shapes = [rows.shape(model) for model in (SimAccount, SimPosition, SimOrder)]
    accounts = f"{quoted(account.db_table)} a"
    by_id = f"WHERE a.{quoted(account.get_field('account_id').column)} = %s"
    lock = f"SELECT a.{quoted(account.pk.column)} FROM {accounts} {by_id} FOR UPDATE"  # noqa: S608

    def nulls(shape: rows.Shape) -> str:
        return ", ".join(["NULL"] * shape.width)

    read = (
        f"SELECT {shapes[0].columns('a')}, {shapes[1].columns('p')}, {nulls(shapes[2])}, 0"  # noqa: S608
        f" FROM {accounts} LEFT JOIN {quoted(position.db_table)} p"
        f" ON p.{quoted(position.get_field('account').column)} = a.{quoted(account.pk.column)}"
        f" {by_id}"
    )
    if not with_open_orders:
        return lock, read
    before_orders = shapes[0].width + shapes[1].width  # ORDER BY's positions count from 1
    created_at = before_orders + shapes[2].attnames.index("created_at") + 1
    part = before_orders + shapes[2].width + 1
    statuses = ", ".join(["%s"] * len(_OPEN))
    read += (
        f" UNION ALL SELECT {nulls(shapes[0])}, {nulls(shapes[1])}, {shapes[2].columns('o')}, 1"  # noqa: S608
        f" FROM {quoted(order.db_table)} o JOIN {accounts}"
        f" ON o.{quoted(order.get_field('account').column)} = a.{quoted(account.pk.column)}"
        f" {by_id} AND o.{quoted(order.get_field('status').column)} IN ({statuses})"
        f" ORDER BY {part}, {created_at}"
    )
    return lock, read


def _initial_status(now: datetime) -> str:
    # Alpaca reports `accepted` for an order received while the market is closed.
    return "new" if calendar.is_open(now) else "accepted"


def _new_order(account: SimAccount, request: OrderRequest, now: datetime, **fields) -> SimOrder:
    values = {
        "account": account,
        "client_order_id": request.client_order_id,
        "symbol": request.symbol,
        "side": request.side,
        "type": request.type,
        "time_in_force": request.time_in_force,
        "order_class": request.order_class,
        "status": _initial_status(now),
        "qty": request.qty,
        "notional": request.notional,
        "limit_price": request.limit_price,
        "stop_price": request.stop_price,
        "trail_price": request.trail_price,
        "trail_percent": request.trail_percent,
        "extended_hours": request.extended_hours,
        "created_at": now,
        "updated_at": now,
        "submitted_at": now,
        "active_at": now,
    }
    values.update(fields)
    order = SimOrder(**values)
    if order.type == "trailing_stop":
        matching.start_trailing(order, market.trade(order.symbol, now).price)
    if order.order_class != "simple":
        # Its legs point at it and are looked up as it fills: stored first. A simple
        # order is stored as matching leaves it (match_placed), filled or resting.
        rows.insert([order])
    record(order, "new", now)
    return order


def _exit_leg(parent: SimOrder, request: OrderRequest, leg: LegRequest, now: datetime, **fields):
    """A take-profit (limit) or stop-loss (stop / stop-limit) leg closing the parent's position."""
    if leg.stop_price is None:
        kind = "limit"
    else:
        kind = "stop_limit" if leg.limit_price is not None else "stop"
    values = {
        "client_order_id": str(uuid.uuid4()),
        "side": "sell" if request.side == "buy" else "buy",
        "type": kind,
        "limit_price": leg.limit_price,
        "stop_price": leg.stop_price,
        "trail_price": None,
        "trail_percent": None,
        "parent": parent,
    }
    values.update(fields)
    return _new_order(parent.account, request, now, **values)


def _create_order(account: SimAccount, request: OrderRequest, now: datetime) -> list[SimOrder]:
    """The order and, for bracket/oto/oco, its legs as child orders: [order, *legs]."""
    legs = [leg for leg in (request.take_profit, request.stop_loss) if leg is not None]
    if request.order_class == "oco":
        # Alpaca's OCO: the take-profit limit is the order, the stop-loss its one leg.
        parent = _new_order(account, request, now, limit_price=request.take_profit.limit_price)
        return [parent, _exit_leg(parent, request, request.stop_loss, now, side=request.side)]
    parent = _new_order(account, request, now)
    # Exit legs wait (`held`) until the entry fills.
    return [
        parent,
        *(
            _exit_leg(parent, request, leg, now, status="held", active_at=None)
            for leg in (legs if request.order_class in ("bracket", "oto") else [])
        ),
    ]
