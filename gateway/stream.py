"""The trade_updates protocol: client messages parsed, server messages built, and desk order
events turned into Alpaca's trade updates (the consumer only moves bytes)."""

from __future__ import annotations

import json

from orders.models import Order
from tradedesk.broker import types

from . import wire
from .models import ApiKey

STREAMS = ("trade_updates",)
MAX_MESSAGE_BYTES = 4096
# Desk event names that are Alpaca events under another name; "" means Alpaca has none (the
# desk's own bookkeeping: its pending record, a cancel it asked for).
DESK_EVENTS = {"accepted": "new", "lost": "rejected", "submitted": "", "cancel_requested": ""}


class BadMessage(ValueError):
    pass


def parse(raw: str | bytes | None) -> dict:
    if raw is None or len(raw) > MAX_MESSAGE_BYTES:
        raise BadMessage("message too large" if raw else "empty message")
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadMessage("invalid syntax") from None
    if not isinstance(message, dict) or not isinstance(message.get("data", {}), dict):
        raise BadMessage("invalid syntax")
    return message


def authorization(status: str, action: str) -> dict:
    return {"stream": "authorization", "data": {"status": status, "action": action}}


def listening(streams: list[str]) -> dict:
    return {"stream": "listening", "data": {"streams": streams}}


def error(message: str) -> dict:
    return {"stream": "error", "data": {"error_message": message}}


def credentials(message: dict) -> tuple[str, str]:
    data = message.get("data") or {}
    key_id, secret = data.get("key_id"), data.get("secret_key")
    return (key_id if isinstance(key_id, str) else ""), (secret if isinstance(secret, str) else "")


def listen_streams(message: dict) -> list[str]:
    streams = (message.get("data") or {}).get("streams")
    if not isinstance(streams, list):
        raise BadMessage("invalid listen: data.streams must be a list")
    return [name for name in STREAMS if name in streams]


def alpaca_event(desk_event: str) -> str:
    name = DESK_EVENTS.get(desk_event, desk_event)
    return name if name in types.TRADE_UPDATE_EVENTS else ""


def trade_update(api_key: ApiKey, frame: dict) -> dict | None:
    """The trade update for one of the desk's `order` frames (orders.events), if it is an
    Alpaca event of an order of the key's account; None otherwise."""
    event = alpaca_event(frame.get("event", ""))
    if not event:
        return None
    order = (
        Order.objects.filter(pk=frame.get("id"), broker_account=api_key.broker_account_id)
        .prefetch_related("legs")
        .first()
    )
    if order is None:
        return None
    data = {
        "event": event,
        "timestamp": frame.get("timestamp") or wire.timestamp(order.updated_at),
        "order": wire.order_body(order, legs=list(order.legs.all())),
    }
    if event in types.EXECUTION_EVENTS:
        data |= _execution(order, frame.get("event", ""))
    return {"stream": "trade_updates", "data": data}


def _execution(order: Order, desk_event: str) -> dict:
    """The execution's price, qty and id: the event's own when the broker reported them,
    else what the order's fill rose by at that event, at the order's average price."""
    events = list(order.events.order_by("-at", "-id")[:50])
    current = next((e for e in events if e.event == desk_event), None)
    if current is None:
        return {"price": wire.number(order.filled_avg_price), "qty": wire.number(order.filled_qty)}
    qty = current.qty
    if qty is None:
        earlier = [e for e in events if (e.at, e.id) < (current.at, current.id)]
        qty = current.filled_qty - (earlier[0].filled_qty if earlier else 0)
    return {
        "price": wire.number(current.price),
        "qty": wire.number(qty),
        "execution_id": current.execution_id or wire.desk_uuid("execution", current.pk),
        "position_qty": None,
    }
