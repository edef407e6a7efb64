"""The paper exchange: Alpaca's paper-trading behaviour over the simulated market.

State lives in the sim models; every call first brings the account's open orders up to
date against the market at `now` (lazy matching), so a resting order fills in whichever
process touches the account next, and the stream process touches every account each second.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from tradedesk.broker import types
from tradedesk.broker.base import Broker
from tradedesk.broker.errors import (
    AuthenticationFailed,
    NotCancelable,
    OrderNotFound,
    OrderRejected,
)
from tradedesk.broker.types import (
    Account,
    Asset,
    Bar,
    BrokerOrder,
    Clock,
    OrderRequest,
    Position,
    Quote,
    ReplaceRequest,
    Trade,
)

from . import calendar, market
from .models import SimAccount, SimOrder, SimOrderEvent, SimPosition
from .universe import ASSETS

# Alpaca's error codes, so the desk handles both brokers' rejections the same way.
CODE_FORBIDDEN = 40310000
CODE_UNPROCESSABLE = 42210000
CODE_BAD_REQUEST = 40010001
CODE_NOT_FOUND = 40410000

_QTY_STEP = Decimal("0.000000001")
_MAX_BARS = 10_000


def open_account(starting_cash: Decimal | None = None) -> str:
    """Create a funded paper account; returns its account id (the broker account's key id)."""
    account = SimAccount.objects.create(
        account_id=str(uuid.uuid4()),
        cash=settings.SIM_STARTING_CASH if starting_cash is None else starting_cash,
    )
    return account.account_id


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

    # --- helpers ----------------------------------------------------------
    def _account(self, *, lock: bool = False) -> SimAccount:
        queryset = SimAccount.objects.select_for_update() if lock else SimAccount.objects
        try:
            return queryset.get(account_id=self.account_id)
        except SimAccount.DoesNotExist:
            raise AuthenticationFailed("unknown paper-exchange account") from None

    def _order(self, account: SimAccount, **lookup) -> SimOrder:
        try:
            return account.orders.get(**lookup)
        except (SimOrder.DoesNotExist, ValueError, TypeError):
            raise OrderNotFound("order not found", code=CODE_NOT_FOUND) from None

    def _with_legs(self, order: SimOrder) -> BrokerOrder:
        return _to_broker_order(order, order.legs.order_by("created_at"))

    def _event(self, order: SimOrder, event: str, now: datetime, **values) -> None:
        SimOrderEvent.objects.create(
            account=order.account, order=order, event=event, at=now, **values
        )

    # --- matching ---------------------------------------------------------
    def process(self) -> None:
        """Match the account's open orders against the market as it is now."""
        now = self._now()
        with transaction.atomic():
            account = self._account(lock=True)
            open_orders = list(
                account.orders.filter(status__in=types.OPEN_STATUSES).order_by("created_at")
            )
            for order in open_orders:
                _advance(account, order, now)

    # --- account ----------------------------------------------------------
    def get_account(self) -> Account:
        self.process()
        account = self._account()
        now = self._now()
        positions = list(account.positions.all())
        long_value = short_value = Decimal("0")
        for position in positions:
            value = position.qty * market.trade(position.symbol, now).price
            if value >= 0:
                long_value += value
            else:
                short_value += value
        equity = account.cash + long_value + short_value
        return Account(
            account_id=account.account_id,
            status="ACTIVE",
            currency="USD",
            cash=_money(account.cash),
            buying_power=_money(_buying_power(account, equity, long_value - short_value, now)),
            equity=_money(equity),
            last_equity=_money(equity),
            portfolio_value=_money(equity),
            long_market_value=_money(long_value),
            short_market_value=_money(short_value),
            multiplier=settings.SIM_MARGIN_MULTIPLIER,
            shorting_enabled=settings.SIM_MARGIN_MULTIPLIER > 1,
        )

    def get_clock(self) -> Clock:
        return calendar.clock(self._now())

    def get_asset(self, symbol: str) -> Asset:
        try:
            return ASSETS[symbol]
        except KeyError:
            raise OrderRejected(
                f"asset not found: {symbol}", code=CODE_NOT_FOUND, http_status=404
            ) from None

    def list_positions(self) -> list[Position]:
        self.process()
        now = self._now()
        result = []
        for position in self._account().positions.exclude(qty=0).order_by("symbol"):
            price = market.trade(position.symbol, now).price
            market_value = position.qty * price
            cost_basis = position.qty * position.avg_entry_price
            unrealized = market_value - cost_basis
            result.append(
                Position(
                    symbol=position.symbol,
                    asset_id=ASSETS[position.symbol].id,
                    qty=position.qty,
                    side="long" if position.qty > 0 else "short",
                    avg_entry_price=position.avg_entry_price,
                    current_price=price,
                    market_value=_money(market_value),
                    cost_basis=_money(cost_basis),
                    unrealized_pl=_money(unrealized),
                    unrealized_plpc=(unrealized / abs(cost_basis)).quantize(Decimal("0.0001"))
                    if cost_basis
                    else Decimal("0"),
                )
            )
        return result

    # --- orders -------------------------------------------------------------
    def submit_order(self, request: OrderRequest) -> BrokerOrder:
        now = self._now()
        asset = self.get_asset(request.symbol)
        if not asset.tradable:
            raise OrderRejected(f"asset {request.symbol} is not tradable", code=CODE_UNPROCESSABLE)
        try:
            with transaction.atomic():
                account = self._account(lock=True)
                _check_submission(account, asset, request, now)
                order = SimOrder.objects.create(
                    account=account,
                    client_order_id=request.client_order_id,
                    symbol=request.symbol,
                    side=request.side,
                    type=request.type,
                    time_in_force=request.time_in_force,
                    order_class=request.order_class,
                    status="new" if calendar.is_open(now) else "accepted",
                    qty=request.qty,
                    notional=request.notional,
                    limit_price=request.limit_price,
                    stop_price=request.stop_price,
                    trail_price=request.trail_price,
                    trail_percent=request.trail_percent,
                    extended_hours=request.extended_hours,
                    created_at=now,
                    updated_at=now,
                    submitted_at=now,
                )
                self._event(order, "new", now)
        except IntegrityError:
            raise OrderRejected(
                "client_order_id must be unique", code=CODE_BAD_REQUEST, http_status=422
            ) from None
        self.process()
        order.refresh_from_db()
        return self._with_legs(order)

    def get_order(self, order_id: str) -> BrokerOrder:
        self.process()
        return self._with_legs(self._order(self._account(), id=order_id))

    def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder:
        self.process()
        return self._with_legs(self._order(self._account(), client_order_id=client_order_id))

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
        self.process()
        orders = self._account().orders.filter(parent__isnull=True)
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
        page = list(orders.order_by(*ordering).prefetch_related("legs")[: min(limit, 500)])
        return [_to_broker_order(order, order.legs.all()) for order in page]

    def cancel_order(self, order_id: str) -> None:
        self.process()
        now = self._now()
        with transaction.atomic():
            account = self._account(lock=True)
            order = self._order(account, id=order_id)
            if order.status not in types.OPEN_STATUSES:
                raise NotCancelable(
                    f"order is not cancelable (status {order.status})", code=CODE_UNPROCESSABLE
                )
            for target in [order, *order.legs.filter(status__in=types.OPEN_STATUSES)]:
                _close(target, "canceled", now)

    def replace_order(self, order_id: str, request: ReplaceRequest) -> BrokerOrder:
        self.process()
        now = self._now()
        with transaction.atomic():
            account = self._account(lock=True)
            old = self._order(account, id=order_id)
            if old.status not in types.OPEN_STATUSES:
                raise NotCancelable(
                    f"order is not replaceable (status {old.status})", code=CODE_UNPROCESSABLE
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
            new.status = "new" if calendar.is_open(now) else "accepted"
            new.filled_qty = Decimal("0")
            new.filled_avg_price = None
            new.last_fill_quote_at = None
            new.replaces = old.id
            new.replaced_by = None
            new.created_at = new.updated_at = new.submitted_at = now
            try:
                with transaction.atomic():
                    new.save(force_insert=True)
            except IntegrityError:
                raise OrderRejected(
                    "client_order_id must be unique", code=CODE_BAD_REQUEST
                ) from None
            old.replaced_by = new.id
            _close(old, "replaced", now)
            self._event(new, "new", now)
        self.process()
        new.refresh_from_db()
        return self._with_legs(new)

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


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


def _open_buy_commitment(account: SimAccount, now: datetime) -> Decimal:
    """What the account's open buy orders would still spend (limit price, else the ask)."""
    total = Decimal("0")
    for order in account.orders.filter(side="buy", status__in=types.OPEN_STATUSES):
        if order.notional is not None and order.qty is None:
            total += order.notional
            continue
        price = order.limit_price or market.quote(order.symbol, now).ask_price
        total += (order.qty - order.filled_qty) * price
    return total


def _buying_power(
    account: SimAccount, equity: Decimal, gross_value: Decimal, now: datetime
) -> Decimal:
    available = settings.SIM_MARGIN_MULTIPLIER * equity - gross_value
    return max(Decimal("0"), available - _open_buy_commitment(account, now))


def _position_qty(account: SimAccount, symbol: str) -> Decimal:
    position = account.positions.filter(symbol=symbol).first()
    return position.qty if position else Decimal("0")


def _check_submission(
    account: SimAccount, asset: Asset, request: OrderRequest, now: datetime
) -> None:
    """The exchange's own refusals, with Alpaca's codes and messages."""
    quote = market.quote(request.symbol, now)
    qty = request.qty
    if qty is None:
        if request.notional is None:
            raise OrderRejected("qty or notional is required", code=CODE_UNPROCESSABLE)
        qty = request.notional / quote.ask_price
    if qty <= 0:
        raise OrderRejected("qty must be > 0", code=CODE_UNPROCESSABLE)
    fractional = qty != qty.to_integral_value()
    if (fractional or request.notional is not None) and not asset.fractionable:
        raise OrderRejected(f"asset {asset.symbol} is not fractionable", code=CODE_UNPROCESSABLE)
    held = _position_qty(account, request.symbol)
    short = request.side == "sell" and qty > max(held, Decimal("0"))
    if short and (fractional or not asset.shortable or settings.SIM_MARGIN_MULTIPLIER <= 1):
        raise OrderRejected(
            f"insufficient qty available for order (requested: {qty}, available: {held})",
            code=CODE_FORBIDDEN,
            http_status=403,
        )
    if request.side == "buy":
        price = request.limit_price or quote.ask_price
        cost = request.notional if request.notional is not None else qty * price
        gross = Decimal("0")
        long_short = Decimal("0")
        for position in account.positions.all():
            value = position.qty * market.trade(position.symbol, now).price
            gross += abs(value)
            long_short += value
        buying_power = _buying_power(account, account.cash + long_short, gross, now)
        if cost > buying_power:
            raise OrderRejected("insufficient buying power", code=CODE_FORBIDDEN, http_status=403)


def _close(order: SimOrder, status: str, now: datetime) -> None:
    order.status = status
    order.updated_at = now
    setattr(order, f"{status}_at", now)
    order.save()
    SimOrderEvent.objects.create(account=order.account, order=order, event=status, at=now)


def _execution_price(order: SimOrder, quote: Quote) -> Decimal | None:
    """The price this order would trade at against `quote`, or None if it can't yet."""
    buy = order.side == "buy"
    touch = quote.ask_price if buy else quote.bid_price
    if order.type == "market":
        return touch
    if order.type == "limit":
        marketable = touch <= order.limit_price if buy else touch >= order.limit_price
        return touch if marketable else None
    return None


def _advance(account: SimAccount, order: SimOrder, now: datetime) -> None:
    """Expire, release or fill one open order as the market stands at `now`."""
    if order.time_in_force == "day" and now >= calendar.session_close(order.submitted_at):
        _close(order, "expired", now)
        return
    trading = calendar.is_open(now) or (order.extended_hours and calendar.is_extended_session(now))
    if not trading:
        return
    if order.status == "accepted":
        order.status = "new"
    quote = market.quote(order.symbol, now)
    if order.last_fill_quote_at == quote.timestamp:
        return
    price = _execution_price(order, quote)
    if price is None:
        if order.status == "new":
            order.save(update_fields=["status"])
        return
    if order.qty is None:  # notional: the quantity is fixed at the first fill
        order.qty = (order.notional / price).quantize(_QTY_STEP, rounding=ROUND_DOWN)
    available = quote.ask_size if order.side == "buy" else quote.bid_size
    fill_qty = min(order.qty - order.filled_qty, available)
    _fill(account, order, fill_qty, price, quote.timestamp, now)


def _fill(
    account: SimAccount,
    order: SimOrder,
    qty: Decimal,
    price: Decimal,
    quote_at: datetime,
    now: datetime,
) -> None:
    signed = qty if order.side == "buy" else -qty
    position, _ = SimPosition.objects.get_or_create(
        account=account,
        symbol=order.symbol,
        defaults={"qty": Decimal("0"), "avg_entry_price": Decimal("0")},
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
    position.save()
    account.cash -= signed * price
    account.save(update_fields=["cash"])

    filled_before = order.filled_qty
    order.filled_qty = filled_before + qty
    order.filled_avg_price = (
        (filled_before * (order.filled_avg_price or 0)) + qty * price
    ) / order.filled_qty
    order.last_fill_quote_at = quote_at
    order.updated_at = now
    done = order.filled_qty >= order.qty
    order.status = "filled" if done else "partially_filled"
    if done:
        order.filled_at = now
    order.save()
    SimOrderEvent.objects.create(
        account=account,
        order=order,
        event="fill" if done else "partial_fill",
        price=price,
        qty=qty,
        position_qty=new_qty,
        at=now,
    )
