"""Helpers shared by the page tests."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from accounts.selectors import default_broker_account
from orders.models import Order, OrderEvent


def make_orders(user, count: int, **fields) -> list[Order]:
    account = default_broker_account(user)
    now = timezone.now()
    orders = Order.objects.bulk_create(
        Order(
            user=user,
            broker_account=account,
            client_order_id=str(uuid.uuid4()),
            symbol=fields.get("symbol", "AAPL"),
            side=fields.get("side", "buy"),
            type=fields.get("type", "limit"),
            time_in_force="day",
            qty=Decimal("1"),
            limit_price=Decimal("10"),
            status=fields.get("status", "new"),
            placed_via="api",
        )
        for _ in range(count)
    )
    # Distinct, known creation times: order i is i minutes old.
    for age, order in enumerate(orders):
        order.created_at = fields.get("created_at", now - timedelta(minutes=age))
    Order.objects.bulk_update(orders, ["created_at"])
    OrderEvent.objects.bulk_create(
        OrderEvent(order=o, event="submitted", status=o.status, source="api", at=now)
        for o in orders
    )
    return orders
