"""Order events for the stream: published from services, only after the commit."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from .models import Order


def user_group(user_id: int) -> str:
    return f"orders.user.{user_id}"


def order_message(order: Order, event: str) -> dict:
    def text(value):
        return None if value is None else str(value)

    return {
        "type": "order",
        "id": order.pk,
        "broker_order_id": order.broker_order_id,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side,
        "order_type": order.type,
        "status": order.status,
        "qty": text(order.qty),
        "filled_qty": text(order.filled_qty),
        "filled_avg_price": text(order.filled_avg_price),
        "event": event,
        "timestamp": order.updated_at.isoformat() if order.updated_at else None,
    }


def publish_order_after_commit(order: Order, event: str) -> None:
    message = order_message(order, event)
    user_id = order.user_id

    def send() -> None:
        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(
                user_group(user_id), {"type": "order.update", "message": message}
            )

    transaction.on_commit(send)
