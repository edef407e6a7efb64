"""Alpaca's wire format: the desk's records as Alpaca's JSON, and Alpaca's requests parsed.

Numbers go out as decimal strings ("2", not "2.0"), times as RFC 3339 UTC; numbers come in
as JSON numbers or strings, times with up to nanoseconds."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

from orders import validation
from orders.models import PENDING_APPROVAL, Order
from orders.validation import OrderInput
from tradedesk.broker import types

_TIME = re.compile(
    r"^(\d{4}-\d\d-\d\d)(?:[T ](\d\d:\d\d(?::\d\d)?)(?:\.(\d{1,9}))?(Z|[+-]\d\d:?\d\d)?)?$"
)
# Alpaca's ids are UUIDs (alpaca-py checks): what the desk names by a row id alone (an order the
# broker has not confirmed, an execution without the broker's id) gets a stable UUID from it.
_DESK_NAMESPACE = uuid.UUID("6f1d3c52-8f0e-4d2b-9a57-7c0c2f3e9b10")


class BadRequest(ValueError):
    """A request Alpaca would refuse as malformed (422 40010001)."""


def number(value: Decimal | None) -> str | None:
    if value is None:
        return None
    return format(value.normalize(), "f") if value else "0"


def timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def order_id(order: Order) -> str:
    """The order's id on the wire: the broker's (a UUID); for an order the broker has not
    confirmed, a UUID derived from the desk's own id."""
    return order.broker_order_id or desk_uuid("order", order.pk)


def desk_uuid(kind: str, pk: object) -> str:
    return str(uuid.uuid5(_DESK_NAMESPACE, f"{kind}:{pk}"))


def order_body(order: Order, *, legs: list[Order] | None = None) -> dict:
    """Alpaca's order object. `legs`: the order's legs, when the caller asked for them."""
    return {
        "id": order_id(order),
        "client_order_id": order.client_order_id,
        "created_at": timestamp(order.broker_created_at or order.created_at),
        "updated_at": timestamp(order.broker_updated_at or order.updated_at),
        "submitted_at": timestamp(order.submitted_at),
        "filled_at": timestamp(order.filled_at),
        "expired_at": timestamp(order.expired_at),
        "canceled_at": timestamp(order.canceled_at),
        "failed_at": timestamp(order.failed_at),
        "replaced_at": timestamp(order.replaced_at),
        "replaced_by": order.replaced_by or None,
        "replaces": order.replaces or None,
        "asset_id": order.asset_id or None,
        "symbol": order.symbol,
        "asset_class": order.asset_class,
        "notional": number(order.notional),
        "qty": number(order.qty),
        "filled_qty": number(order.filled_qty),
        "filled_avg_price": number(order.filled_avg_price),
        # Alpaca writes a simple order's class as "".
        "order_class": "" if order.order_class == "simple" else order.order_class,
        "order_type": order.type,
        "type": order.type,
        "side": order.side,
        "position_intent": order.position_intent or None,
        "time_in_force": order.time_in_force,
        "limit_price": number(order.limit_price),
        "stop_price": number(order.stop_price),
        # Alpaca has no "waiting for approval": `accepted` (received, not yet routed) is it.
        "status": "accepted" if order.status == PENDING_APPROVAL else order.status,
        "extended_hours": order.extended_hours,
        "legs": None if legs is None else [order_body(leg) for leg in legs] or None,
        "trail_percent": number(order.trail_percent),
        "trail_price": number(order.trail_price),
        "hwm": number(order.hwm),
        "expires_at": timestamp(order.expires_at),
        "subtag": None,
        "source": None,
        "commission": "0",
    }


def account(info: types.Account, *, number_: str, created_at: datetime) -> dict:
    """Alpaca's account (its schema since 2026-07: no day-trade fields)."""
    buying_power = number(info.buying_power)
    return {
        "id": info.account_id
        if is_uuid(info.account_id)
        else desk_uuid("account", info.account_id),
        "account_number": number_,
        "status": info.status,
        "crypto_status": "INACTIVE",
        "currency": info.currency,
        "buying_power": buying_power,
        "regt_buying_power": buying_power,
        "effective_buying_power": buying_power,
        "non_marginable_buying_power": number(min(info.cash, info.buying_power)),
        "options_buying_power": "0",
        "cash": number(info.cash),
        "accrued_fees": "0",
        "pending_transfer_in": "0",
        "portfolio_value": number(info.portfolio_value),
        "trading_blocked": info.trading_blocked,
        "transfers_blocked": False,
        "account_blocked": False,
        "created_at": timestamp(created_at),
        "trade_suspended_by_user": False,
        "multiplier": number(info.multiplier),
        "shorting_enabled": info.shorting_enabled,
        "equity": number(info.equity),
        "last_equity": number(info.last_equity),
        "long_market_value": number(info.long_market_value),
        "short_market_value": number(info.short_market_value),
        "position_market_value": number(info.long_market_value - info.short_market_value),
        "initial_margin": "0",
        "maintenance_margin": "0",
        "last_maintenance_margin": "0",
        "sma": "0",
        "intraday_adjustments": "0",
        "pending_reg_taf_fees": "0",
    }


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def clock(info: types.Clock, zone) -> dict:
    return {
        "timestamp": info.timestamp.astimezone(zone).isoformat(),
        "is_open": info.is_open,
        "next_open": info.next_open.astimezone(zone).isoformat(),
        "next_close": info.next_close.astimezone(zone).isoformat(),
    }


def calendar_day(opens: datetime, closes: datetime) -> dict:
    return {
        "date": opens.date().isoformat(),
        "open": opens.strftime("%H:%M"),
        "close": closes.strftime("%H:%M"),
        "session_open": "0400",
        "session_close": "2000",
    }


def asset(info: types.Asset) -> dict:
    return {
        "id": info.id,
        "class": info.asset_class,
        "exchange": info.exchange,
        "symbol": info.symbol,
        "name": info.name,
        "status": info.status,
        "tradable": info.tradable,
        "marginable": info.marginable,
        "shortable": info.shortable,
        "easy_to_borrow": info.easy_to_borrow,
        "fractionable": info.fractionable,
        "attributes": [],
    }


def position(info: types.Position, exchange: str) -> dict:
    return {
        "asset_id": info.asset_id,
        "symbol": info.symbol,
        "exchange": exchange,
        "asset_class": info.asset_class,
        "asset_marginable": True,
        "qty": number(info.qty),
        "qty_available": number(info.qty),
        "avg_entry_price": number(info.avg_entry_price),
        "side": info.side,
        "market_value": number(info.market_value),
        "cost_basis": number(info.cost_basis),
        "unrealized_pl": number(info.unrealized_pl),
        "unrealized_plpc": number(info.unrealized_plpc),
        "unrealized_intraday_pl": number(info.unrealized_pl),
        "unrealized_intraday_plpc": number(info.unrealized_plpc),
        "current_price": number(info.current_price),
        "lastday_price": number(info.current_price),
        "change_today": "0",
    }


# --- parsing -------------------------------------------------------------------------
# Alpaca sends position_intent too; the desk derives it (ignored here).
ORDER_FIELDS = frozenset({*validation.ORDER_FIELDS, "position_intent"})
REPLACE_FIELDS = frozenset(
    {"qty", "limit_price", "stop_price", "trail", "time_in_force", "client_order_id"}
)
_LEG_FIELDS = {"take_profit": {"limit_price"}, "stop_loss": {"stop_price", "limit_price"}}


def decimal(value, name: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BadRequest(f"{name} must be a number")
    try:
        parsed = Decimal(str(value).strip())
    except InvalidOperation:
        raise BadRequest(f"invalid {name}") from None
    if not parsed.is_finite() or abs(parsed) >= validation.MAX_NUMBER:
        raise BadRequest(f"invalid {name}")
    return parsed


def _text(value, name: str, *, max_length: int, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or len(value) > max_length or (required and not value):
        raise BadRequest(f"{name} is {'missing' if value in (None, '') else 'invalid'}")
    return value


def _boolean(value, name: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise BadRequest(f"{name} must be a boolean")


def _object(body, allowed: frozenset[str] | set[str], what: str) -> dict:
    if not isinstance(body, dict):
        raise BadRequest(f"{what} must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}")
    return body


def _leg(body: dict, name: str) -> types.LegRequest | None:
    value = body.get(name)
    if value is None:
        return None
    leg = _object(value, _LEG_FIELDS[name], name)
    return types.LegRequest(
        limit_price=decimal(leg.get("limit_price"), f"{name}.limit_price"),
        stop_price=decimal(leg.get("stop_price"), f"{name}.stop_price"),
    )


def order_request(body) -> OrderInput:
    """POST /v2/orders's body as the desk's order input (judging it is the gate's job)."""
    body = _object(body, ORDER_FIELDS, "the order")
    return OrderInput(
        symbol=_text(body.get("symbol"), "symbol", max_length=16, required=True).upper(),
        side=_text(body.get("side"), "side", max_length=16, required=True),
        type=_text(body.get("type"), "type", max_length=16, required=True),
        time_in_force=_text(body.get("time_in_force"), "time_in_force", max_length=8) or "day",
        client_order_id=_text(body.get("client_order_id"), "client_order_id", max_length=128),
        qty=decimal(body.get("qty"), "qty"),
        notional=decimal(body.get("notional"), "notional"),
        limit_price=decimal(body.get("limit_price"), "limit_price"),
        stop_price=decimal(body.get("stop_price"), "stop_price"),
        trail_price=decimal(body.get("trail_price"), "trail_price"),
        trail_percent=decimal(body.get("trail_percent"), "trail_percent"),
        extended_hours=_boolean(body.get("extended_hours"), "extended_hours"),
        order_class=_text(body.get("order_class"), "order_class", max_length=8) or "simple",
        take_profit=_leg(body, "take_profit"),
        stop_loss=_leg(body, "stop_loss"),
    )


def replace_request(body) -> types.ReplaceRequest:
    """PATCH /v2/orders/{id}'s body. A client_order_id given for the new order is accepted
    but the desk names the replacement itself (its gate records it before the broker)."""
    body = _object(body, REPLACE_FIELDS, "the replace")
    changes = {
        name: decimal(body.get(name), name)
        for name in ("qty", "limit_price", "stop_price", "trail")
    }
    tif = _text(body.get("time_in_force"), "time_in_force", max_length=8) or None
    if all(value is None for value in changes.values()) and tif is None:
        raise BadRequest("no field to replace")
    return types.ReplaceRequest(**changes, time_in_force=tif)


def parse_time(text: str, name: str) -> datetime:
    """An RFC 3339 time (nanoseconds allowed, truncated to µs) or a date; naive is UTC."""
    match = _TIME.match(text.strip())
    if match is None:
        raise BadRequest(f"invalid {name}")
    day, clock_part, fraction, offset = match.groups()
    if clock_part is None:
        try:
            return datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC)
        except ValueError:
            raise BadRequest(f"invalid {name}") from None
    offset = "+00:00" if offset in (None, "Z") else offset
    fraction = f".{fraction[:6].ljust(6, '0')}" if fraction else ""
    try:
        return datetime.fromisoformat(f"{day}T{clock_part}{fraction}{offset}").astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: past year 1 or 9999 once in UTC
        raise BadRequest(f"invalid {name}") from None


def parse_date(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError:
        raise BadRequest(f"invalid {name}") from None
