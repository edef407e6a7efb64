"""Conversions between alpaca-py's models and the broker layer's data classes.

alpaca-py parses Alpaca's JSON into pydantic models with enums, floats and offset-aware
datetimes; the desk speaks Decimal, plain strings with Alpaca's names and UTC. Nothing in
here performs I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from alpaca.data.models import Bar as AlpacaBar
from alpaca.data.models import Quote as AlpacaQuote
from alpaca.data.models import Trade as AlpacaTrade
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading import enums as alpaca_enums
from alpaca.trading import models as alpaca_models
from alpaca.trading import requests as alpaca_requests
from pydantic import TypeAdapter, ValidationError

from ..calendar import market_zone
from ..errors import BrokerUnavailable, OrderRejected
from ..types import (
    Account,
    Asset,
    Bar,
    BrokerOrder,
    CancelResult,
    Clock,
    ClosePositionResult,
    FeeActivity,
    FillActivity,
    OrderRequest,
    OrderUpdate,
    Position,
    Quote,
    ReplaceRequest,
    Trade,
)

ORDER_REQUEST_CLASSES: dict[str, type[alpaca_requests.OrderRequest]] = {
    "market": alpaca_requests.MarketOrderRequest,
    "limit": alpaca_requests.LimitOrderRequest,
    "stop": alpaca_requests.StopOrderRequest,
    "stop_limit": alpaca_requests.StopLimitOrderRequest,
    "trailing_stop": alpaca_requests.TrailingStopOrderRequest,
}

TIMEFRAMES = {
    "1Min": TimeFrame(1, TimeFrameUnit.Minute),
    "1Hour": TimeFrame(1, TimeFrameUnit.Hour),
    "1Day": TimeFrame(1, TimeFrameUnit.Day),
}


@dataclass(frozen=True)
class MarketDay:
    """One trading session from Alpaca's calendar (not part of the Broker interface)."""

    date: date
    open: datetime
    close: datetime


# --- small helpers ----------------------------------------------------------

# Alpaca's RFC 3339 times (nanoseconds cut to microseconds), as alpaca-py's models parse them.
_WIRE_TIME = TypeAdapter(datetime)


def dec(value: str | float | int | None) -> Decimal | None:
    # str() first: Decimal(0.1) would carry the float's binary error into the desk.
    return None if value is None else Decimal(str(value))


def dec0(value: str | float | int | None) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal("0")


def name(value: Enum | str | None) -> str:
    """An alpaca-py enum (or a string it left unparsed) as Alpaca's plain wire name."""
    if value is None:
        return ""
    return str(value.value) if isinstance(value, Enum) else str(value)


def utc(value: datetime) -> datetime:
    # alpaca-py keeps Alpaca's offsets (-04:00 on clock and order times); the desk is UTC.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def to_float(value: Decimal | None) -> float | None:
    # The alpaca-py boundary: its request models declare floats and send JSON numbers.
    return None if value is None else float(value)


def invalid_request(message: str) -> OrderRejected:
    """An order the desk can tell is malformed before anything is sent to Alpaca."""
    return OrderRejected(message, code="invalid_request", http_status=422)


# --- Alpaca -> desk ----------------------------------------------------------


class LenientOrder(alpaca_models.Order):
    """alpaca-py's Order, but a value its enums don't know yet (a status, order class, type,
    side, time in force, position intent: Alpaca adds them) is kept as the plain string instead
    of failing the whole response (one such order would fail a page of 500, and the sync)."""

    status: alpaca_enums.OrderStatus | str
    order_class: alpaca_enums.OrderClass | str
    position_intent: alpaca_enums.PositionIntent | str | None = None
    type: alpaca_enums.OrderType | str | None = None
    order_type: alpaca_enums.OrderType | str | None = None
    side: alpaca_enums.OrderSide | str | None = None
    time_in_force: alpaca_enums.TimeInForce | str
    asset_class: alpaca_enums.AssetClass | str | None = None
    legs: list[LenientOrder] | None = None


class LenientTradeUpdate(alpaca_models.TradeUpdate):
    order: LenientOrder


_ORDER_LIST = TypeAdapter(list[LenientOrder])


def parse_order(raw: dict[str, Any]) -> LenientOrder:
    """One order of Alpaca's JSON (alpaca-py's raw data); raises pydantic's ValidationError."""
    return LenientOrder.model_validate(raw)


def parse_orders(raw: list[dict[str, Any]]) -> list[LenientOrder]:
    return _ORDER_LIST.validate_python(raw)


def parse_trade_update(raw: dict[str, Any]) -> LenientTradeUpdate:
    """A trade_updates message's data; raises pydantic's ValidationError."""
    return LenientTradeUpdate.model_validate(raw)


def account_from_alpaca(a: alpaca_models.TradeAccount) -> Account:
    return Account(
        account_id=str(a.id),
        status=name(a.status),
        currency=a.currency or "USD",
        cash=dec0(a.cash),
        buying_power=dec0(a.buying_power),
        equity=dec0(a.equity),
        last_equity=dec0(a.last_equity),
        portfolio_value=dec0(a.portfolio_value),
        long_market_value=dec0(a.long_market_value),
        short_market_value=dec0(a.short_market_value),
        multiplier=dec(a.multiplier) or Decimal("1"),
        shorting_enabled=bool(a.shorting_enabled),
        # A blocked account can't trade either.
        trading_blocked=bool(a.trading_blocked or a.account_blocked),
    )


def clock_from_alpaca(c: alpaca_models.Clock) -> Clock:
    return Clock(
        timestamp=utc(c.timestamp),
        is_open=c.is_open,
        next_open=utc(c.next_open),
        next_close=utc(c.next_close),
    )


def market_day_from_alpaca(c: alpaca_models.Calendar) -> MarketDay:
    return MarketDay(
        date=c.date,
        # Alpaca's calendar gives wall-clock times on the exchange's clock.
        open=c.open.replace(tzinfo=market_zone()).astimezone(UTC),
        close=c.close.replace(tzinfo=market_zone()).astimezone(UTC),
    )


def asset_from_alpaca(a: alpaca_models.Asset) -> Asset:
    return Asset(
        id=str(a.id),
        symbol=a.symbol,
        name=a.name or "",
        exchange=name(a.exchange),
        asset_class=name(a.asset_class),
        status=name(a.status),
        tradable=a.tradable,
        marginable=a.marginable,
        shortable=a.shortable,
        easy_to_borrow=a.easy_to_borrow,
        fractionable=a.fractionable,
    )


def position_from_alpaca(p: alpaca_models.Position) -> Position:
    return Position(
        symbol=p.symbol,
        asset_id=str(p.asset_id),
        qty=dec0(p.qty),
        side=name(p.side),
        avg_entry_price=dec0(p.avg_entry_price),
        current_price=dec0(p.current_price),
        market_value=dec0(p.market_value),
        cost_basis=dec0(p.cost_basis),
        unrealized_pl=dec0(p.unrealized_pl),
        unrealized_plpc=dec0(p.unrealized_plpc),
        asset_class=name(p.asset_class),
    )


def order_from_alpaca(o: alpaca_models.Order) -> BrokerOrder:
    """The one order converter: REST responses and trade-update events both come through here."""
    return BrokerOrder(
        id=str(o.id),
        client_order_id=o.client_order_id,
        symbol=o.symbol or "",
        side=name(o.side),
        type=name(o.type or o.order_type),
        time_in_force=name(o.time_in_force),
        status=name(o.status),
        created_at=utc(o.created_at),
        updated_at=utc(o.updated_at),
        asset_id=str(o.asset_id) if o.asset_id else "",
        asset_class=name(o.asset_class),
        # alpaca-py already turns Alpaca's "" into simple; name() keeps the wire name.
        order_class=name(o.order_class) or "simple",
        qty=dec(o.qty),
        notional=dec(o.notional),
        filled_qty=dec0(o.filled_qty),
        filled_avg_price=dec(o.filled_avg_price),
        limit_price=dec(o.limit_price),
        stop_price=dec(o.stop_price),
        trail_price=dec(o.trail_price),
        trail_percent=dec(o.trail_percent),
        hwm=dec(o.hwm),
        extended_hours=o.extended_hours,
        submitted_at=utc_or_none(o.submitted_at),
        filled_at=utc_or_none(o.filled_at),
        canceled_at=utc_or_none(o.canceled_at),
        expired_at=utc_or_none(o.expired_at),
        failed_at=utc_or_none(o.failed_at),
        replaced_at=utc_or_none(o.replaced_at),
        replaced_by=str(o.replaced_by) if o.replaced_by else None,
        replaces=str(o.replaces) if o.replaces else None,
        expires_at=utc_or_none(o.expires_at),
        position_intent=name(o.position_intent),
        legs=tuple(order_from_alpaca(leg) for leg in o.legs or ()),
    )


def order_update_from_alpaca(data: dict) -> OrderUpdate:
    """One trade_updates event from its JSON (the frame's `data`).

    convert's lenient TradeUpdate parses the order (a status or class alpaca-py doesn't know is
    kept as it came) and the time; the execution's price and qty are
    read from Alpaca's decimal strings (the model makes floats of them), and what the model
    drops (a refusal's reason, should Alpaca send one) is kept. The execution id is the desk's
    opaque key: alpaca-py would refuse the whole update over one that is not a UUID.
    """
    update = parse_trade_update({k: v for k, v in data.items() if k != "execution_id"})
    return OrderUpdate(
        event=name(update.event),
        order=order_from_alpaca(update.order),
        timestamp=utc(update.timestamp),
        price=dec(data.get("price")),
        qty=dec(data.get("qty")),
        position_qty=dec(data.get("position_qty")),
        execution_id=str(data.get("execution_id") or ""),
        reason=str(data.get("reason") or ""),
    )


def fill_activity_from_alpaca(a: dict) -> FillActivity:
    """One FILL activity (GET /v2/account/activities/FILL) from its JSON; alpaca-py 0.44 has
    no Trading-API call for activities (its TradeActivity model wants the Broker API's
    account_id)."""
    try:
        return FillActivity(
            id=str(a["id"]),
            order_id=str(a["order_id"]),
            symbol=str(a["symbol"]),
            side=str(a["side"]),
            type=str(a.get("type") or "fill"),
            price=dec0(a["price"]),
            qty=dec0(a["qty"]),
            cum_qty=dec0(a.get("cum_qty")),
            leaves_qty=dec0(a.get("leaves_qty")),
            transaction_time=utc(_WIRE_TIME.validate_python(a["transaction_time"])),
            order_status=str(a.get("order_status") or ""),
        )
    except (KeyError, TypeError, ArithmeticError, ValidationError) as exc:
        raise BrokerUnavailable(f"unexpected activity from Alpaca: {a!r}") from exc


def fee_activity_from_alpaca(a: dict) -> FeeActivity:
    """One FEE or PTC non-trade activity from its JSON (GET /v2/account/activities): the
    fields of alpaca-py's NonTradeActivity, plus Alpaca's activity_sub_type and an order_id
    should one come. `date` is the day as Alpaca wrote it (a date, or a time on that date)."""
    try:
        return FeeActivity(
            id=str(a["id"]),
            activity_type=str(a["activity_type"]),
            date=date.fromisoformat(str(a["date"])[:10]),
            amount=-dec0(a["net_amount"]),
            sub_type=str(a.get("activity_sub_type") or ""),
            symbol=str(a.get("symbol") or ""),
            order_id=str(a.get("order_id") or ""),
            description=str(a.get("description") or ""),
            status=str(a.get("status") or ""),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise BrokerUnavailable(f"unexpected activity from Alpaca: {a!r}") from exc


def cancel_result_from_alpaca(r: alpaca_requests.CancelOrderResponse) -> CancelResult:
    body = r.body or {}
    return CancelResult(
        order_id=str(r.id),
        status=r.status,
        code=body.get("code"),
        message=str(body.get("message") or ""),
    )


def close_result_from_alpaca(r: alpaca_models.ClosePositionResponse) -> ClosePositionResult:
    if isinstance(r.body, alpaca_models.Order):
        order = order_from_alpaca(r.body)
        return ClosePositionResult(
            symbol=r.symbol or order.symbol, status=r.status or 200, order=order
        )
    return ClosePositionResult(
        symbol=r.symbol or r.body.symbol or "",
        status=r.status or 0,
        code=r.body.code,
        message=r.body.message,
    )


def quote_from_alpaca(q: AlpacaQuote) -> Quote:
    return Quote(
        symbol=q.symbol,
        bid_price=dec0(q.bid_price),
        bid_size=dec0(q.bid_size),
        ask_price=dec0(q.ask_price),
        ask_size=dec0(q.ask_size),
        timestamp=utc(q.timestamp),
    )


def trade_from_alpaca(t: AlpacaTrade) -> Trade:
    return Trade(
        symbol=t.symbol, price=dec0(t.price), size=dec0(t.size), timestamp=utc(t.timestamp)
    )


def bar_from_alpaca(b: AlpacaBar) -> Bar:
    return Bar(
        symbol=b.symbol,
        timestamp=utc(b.timestamp),
        open=dec0(b.open),
        high=dec0(b.high),
        low=dec0(b.low),
        close=dec0(b.close),
        volume=dec0(b.volume),
    )


# --- desk -> Alpaca ----------------------------------------------------------


def order_request_to_alpaca(r: OrderRequest) -> alpaca_requests.OrderRequest:
    """Build alpaca-py's request; an order it can't express is rejected before any I/O."""
    request_class = ORDER_REQUEST_CLASSES.get(r.type)
    if request_class is None:
        raise invalid_request(f"unsupported order type {r.type!r}")
    if not r.client_order_id:
        # Alpaca refuses a repeated client_order_id: that is what makes a retried or
        # reconciled submission safe, so the desk never sends an order without one.
        raise invalid_request("client_order_id is required")
    try:
        fields: dict[str, object] = {
            "symbol": r.symbol,
            "side": r.side,
            "time_in_force": r.time_in_force,
            "client_order_id": r.client_order_id,
            "qty": to_float(r.qty),
            "notional": to_float(r.notional),
            # "simple" is Alpaca's default; leave it off the wire like Alpaca's own examples.
            "order_class": None if r.order_class == "simple" else r.order_class,
            "extended_hours": r.extended_hours or None,
            "limit_price": to_float(r.limit_price),
            "stop_price": to_float(r.stop_price),
            "trail_price": to_float(r.trail_price),
            "trail_percent": to_float(r.trail_percent),
        }
        if r.take_profit is not None:
            fields["take_profit"] = alpaca_requests.TakeProfitRequest(
                limit_price=to_float(r.take_profit.limit_price)
            )
        if r.stop_loss is not None:
            fields["stop_loss"] = alpaca_requests.StopLossRequest(
                stop_price=to_float(r.stop_loss.stop_price),
                limit_price=to_float(r.stop_loss.limit_price),
            )
        return request_class(**{k: v for k, v in fields.items() if v is not None})
    except (ValidationError, ValueError) as exc:
        raise invalid_request(_validation_message(exc)) from exc


def replace_request_to_alpaca(r: ReplaceRequest) -> alpaca_requests.ReplaceOrderRequest:
    if r.qty is not None and r.qty != r.qty.to_integral_value():
        raise invalid_request("a replace takes a whole qty")
    try:
        return alpaca_requests.ReplaceOrderRequest(
            qty=int(r.qty) if r.qty is not None else None,
            time_in_force=alpaca_enums.TimeInForce(r.time_in_force) if r.time_in_force else None,
            limit_price=to_float(r.limit_price),
            stop_price=to_float(r.stop_price),
            trail=to_float(r.trail),
            client_order_id=r.client_order_id,
        )
    except (ValidationError, ValueError) as exc:
        raise invalid_request(_validation_message(exc)) from exc


def _validation_message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(str(e.get("msg", e)) for e in exc.errors())
    return str(exc)
