"""Alpaca's rejection rules, as the paper exchange applies them to a submission or a replace
(the messages and codes Alpaca answers with)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings

from tradedesk.broker import calendar
from tradedesk.broker.errors import OrderRejected
from tradedesk.broker.types import Asset, OrderRequest, Quote

from . import ledger, market, matching
from .models import SimAccount, SimOrder
from .universe import ASSETS

# Alpaca's error codes, so the desk handles both brokers' rejections the same way.
CODE_FORBIDDEN = 40310000
CODE_UNPROCESSABLE = 42210000
CODE_BAD_REQUEST = 40010001
CODE_NOT_FOUND = 40410000
# Alpaca's auction cut-offs: opg until 9:28 ET (2 min before the open), cls until 10 min before
# the close; from 19:00 ET both queue for the next session's auction.
_OPG_CUTOFF = timedelta(minutes=2)
_CLS_CUTOFF = timedelta(minutes=10)
_AUCTIONS_REOPEN_MINUTES = 19 * 60
# Alpaca values an opening short sale at 3% above the ask (or its limit price, if higher).
_SHORT_PRICE_BUFFER = Decimal("1.03")


def reject(message: str, code: int = CODE_UNPROCESSABLE, http_status: int = 422):
    raise OrderRejected(message, code=code, http_status=http_status)


def _check_price_increment(name: str, price: Decimal | None) -> None:
    if price is None:
        return
    step = Decimal("0.01") if price >= 1 else Decimal("0.0001")
    if price <= 0 or price % step:
        reject(
            f"invalid {name} {price}. sub-penny increment does not fulfill minimum pricing criteria"
        )


def _check_shape(request: OrderRequest) -> None:
    """Fields each type, time in force and class needs (Alpaca's 422s)."""
    needs = {
        "limit": ("limit_price",),
        "stop": ("stop_price",),
        "stop_limit": ("limit_price", "stop_price"),
    }
    # An OCO's limit price is its take-profit's.
    for field in needs.get(request.type, ()) if request.order_class != "oco" else ():
        if getattr(request, field) is None:
            reject(f"{field} is required for {request.type} orders")
    if request.type == "trailing_stop":
        if (request.trail_price is None) == (request.trail_percent is None):
            reject("trailing stop orders need exactly one of trail_price or trail_percent")
        if request.time_in_force not in ("day", "gtc"):
            reject("trailing stop orders must be day or gtc")
    for field in ("limit_price", "stop_price"):
        _check_price_increment(field, getattr(request, field))
    if (request.qty is None) == (request.notional is None):
        reject("qty or notional is required (not both)")
    if request.time_in_force in ("opg", "cls") and request.type not in ("market", "limit"):
        reject(f"{request.time_in_force} orders must be market or limit orders")
    if request.order_class != "simple":
        _check_legs(request)


def _check_legs(request: OrderRequest) -> None:
    cls = request.order_class
    if request.notional is not None:
        reject(f"{cls} orders require qty, not notional")
    if request.time_in_force not in ("day", "gtc"):
        reject(f"{cls} orders must be day or gtc")
    take_profit, stop_loss = request.take_profit, request.stop_loss
    if cls in ("bracket", "oco") and (take_profit is None or stop_loss is None):
        reject(f"{cls} orders require take_profit and stop_loss")
    if cls == "oto" and (take_profit is None) == (stop_loss is None):
        reject("oto orders require exactly one of take_profit or stop_loss")
    if take_profit is not None and take_profit.limit_price is None:
        reject("take_profit.limit_price is required")
    if stop_loss is not None and stop_loss.stop_price is None:
        reject("stop_loss.stop_price is required")
    if cls == "oco" and request.type != "limit":
        reject("oco orders must be limit orders")
    if cls != "oco" and request.type not in ("market", "limit"):
        reject(f"{cls} entry orders must be market or limit orders")
    for name, leg in (("take_profit", take_profit), ("stop_loss", stop_loss)):
        if leg is not None:
            _check_price_increment(f"{name}.limit_price", leg.limit_price)
            _check_price_increment(f"{name}.stop_price", leg.stop_price)


def _check_leg_prices(request: OrderRequest, base: Decimal) -> None:
    """Exits must sit on the right side of the entry (Alpaca's base-price rule)."""
    # An OCO exits the position the entry's opposite side holds: a sell OCO protects a long.
    long_exit = request.side == "buy" if request.order_class != "oco" else request.side == "sell"
    cent = Decimal("0.01")
    if request.take_profit is not None:
        price = request.take_profit.limit_price
        if long_exit and price < base + cent:
            reject(f"take_profit.limit_price must be >= base_price + 0.01 (base {base})")
        if not long_exit and price > base - cent:
            reject(f"take_profit.limit_price must be <= base_price - 0.01 (base {base})")
    if request.stop_loss is not None:
        price = request.stop_loss.stop_price
        if long_exit and price > base - cent:
            reject(f"stop_loss.stop_price must be <= base_price - 0.01 (base {base})")
        if not long_exit and price < base + cent:
            reject(f"stop_loss.stop_price must be >= base_price + 0.01 (base {base})")


def _check_auction_window(request: OrderRequest, now: datetime) -> None:
    """Alpaca refuses opg after 9:28 ET and cls after 15:50 ET, until 19:00 ET."""
    session = calendar.session_on_date_of(now)
    if session is None or calendar.new_york_minutes(now) >= _AUCTIONS_REOPEN_MINUTES:
        return
    opens, closes = session
    if request.time_in_force == "opg" and now >= opens - _OPG_CUTOFF:
        reject("opg orders are accepted until 2 minutes before the open, and after 19:00 ET")
    if request.time_in_force == "cls" and now >= closes - _CLS_CUTOFF:
        reject("cls orders are accepted until 10 minutes before the close, and after 19:00 ET")


def check_submission(
    account: SimAccount,
    asset: Asset,
    request: OrderRequest,
    now: datetime,
    open_orders: list[SimOrder],
) -> None:
    """The exchange's own refusals, with Alpaca's codes and messages.

    `open_orders` are the account's open orders, matched up to `now`.
    """
    _check_shape(request)
    _check_auction_window(request, now)
    quote = market.quote(request.symbol, now)
    qty = request.qty
    if qty is None:
        if request.type != "market" or request.time_in_force != "day":
            reject("notional orders must be market orders with time_in_force day")
        qty = request.notional / quote.ask_price
    if qty <= 0:
        reject("qty must be > 0")
    fractional = request.notional is not None or qty != qty.to_integral_value()
    if fractional:
        if not asset.fractionable:
            reject(f"asset {asset.symbol} is not fractionable")
        if request.time_in_force != "day":
            reject("fractional orders must be day orders")
        if request.type == "trailing_stop" or request.order_class != "simple":
            reject("fractional orders must be simple market, limit, stop or stop_limit orders")
    if request.order_class != "simple":
        base = request.limit_price or (
            quote.ask_price if request.side == "buy" else quote.bid_price
        )
        _check_leg_prices(request, base)

    _check_affordable(account, asset, request, qty, fractional, quote, open_orders, now)


def _check_affordable(
    account: SimAccount,
    asset: Asset,
    request: OrderRequest,
    qty: Decimal,
    fractional: bool,
    quote: Quote,
    open_orders: list[SimOrder],
    now: datetime,
) -> None:
    """Shares to sell and buying power for the order, beside `open_orders` (Alpaca's 403s)."""
    positions = ledger.held_positions(account)
    held = next((p.qty for p in positions if p.symbol == request.symbol), Decimal("0"))
    if request.side == "sell":
        available = max(held, Decimal("0")) - ledger.held_for_sells(open_orders, request.symbol)
        opening = max(Decimal("0"), qty - max(available, Decimal("0")))
        shortable = asset.shortable and asset.easy_to_borrow
        if opening > 0 and (fractional or not shortable or settings.SIM_MARGIN_MULTIPLIER <= 1):
            reject(
                f"insufficient qty available for order (requested: {qty}, "
                f"available: {max(available, Decimal('0'))})",
                code=CODE_FORBIDDEN,
                http_status=403,
            )
        price = max(request.limit_price or Decimal("0"), quote.ask_price * _SHORT_PRICE_BUFFER)
        cost = opening * price
    else:
        covering = max(-held, Decimal("0"))
        price = request.limit_price or request.stop_price or quote.ask_price
        cost = (
            request.notional
            if request.notional is not None
            else max(Decimal("0"), qty - covering) * price
        )
    long_value, short_value = ledger.market_values(positions, now)
    if cost > ledger.buying_power(account, long_value, short_value, open_orders, now):
        reject("insufficient buying power", code=CODE_FORBIDDEN, http_status=403)


def check_replacement(account: SimAccount, old: SimOrder, new: SimOrder, now: datetime) -> None:
    """Alpaca re-checks a replacement as the new order it is, with the old one's hold on
    shares and buying power released (an exit leg's OCO group holds once: the new one's)."""
    in_group = old.parent_id is not None and old.order_class != "simple"
    open_orders = [
        order
        for order in matching.match_account(account, now)
        if order.pk != old.pk and not (in_group and order.parent_id == old.parent_id)
    ]
    request = OrderRequest(
        symbol=new.symbol,
        side=new.side,
        type=new.type,
        time_in_force=new.time_in_force,
        qty=new.qty,
        notional=new.notional,
        limit_price=new.limit_price,
        stop_price=new.stop_price,
    )
    for field in ("limit_price", "stop_price"):
        _check_price_increment(field, getattr(request, field))
    qty = new.qty if new.qty is not None else new.notional / market.quote(new.symbol, now).ask_price
    if qty <= 0:
        reject("qty must be > 0")
    fractional = new.notional is not None or qty != qty.to_integral_value()
    _check_affordable(
        account,
        ASSETS[new.symbol],
        request,
        qty,
        fractional,
        market.quote(new.symbol, now),
        open_orders,
        now,
    )
