"""A day of filled orders on an account, written in bulk as placing them leaves them: the
desk's orders and events, the paper exchange's orders and trade updates (the statement-count
test and bench/orders.py: thousands of orders without placing each)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.utils import timezone

from orders.models import Order, OrderEvent
from tradedesk.broker.sim.models import SimAccount, SimOrder, SimOrderEvent

ONE = Decimal("1")


def fill_day(user, count: int, *, symbols=("AAPL",), alternate: bool = False, price="100"):
    """`count` filled market orders of 1 share today on the user's (only) account, round
    `symbols`; buys, or buy and sell in turn (`alternate`: the held position is unchanged)."""
    account = user.broker_accounts.get()
    sim_account = SimAccount.objects.get(account_id=account.key_id)
    now, price = timezone.now(), Decimal(price)
    for start in range(0, count, 1000):
        made = [
            {
                "client_order_id": str(uuid.uuid4()),
                "symbol": symbols[index % len(symbols)],
                "side": "sell" if alternate and index % 2 else "buy",
                "type": "market",
                "time_in_force": "day",
                "status": "filled",
                "qty": ONE,
                "filled_qty": ONE,
                "filled_avg_price": price,
                "submitted_at": now,
                "filled_at": now,
            }
            for index in range(start, min(count, start + 1000))
        ]
        sim_orders = SimOrder.objects.bulk_create(
            SimOrder(account=sim_account, created_at=now, updated_at=now, active_at=now, **each)
            for each in made
        )
        SimOrderEvent.objects.bulk_create(
            SimOrderEvent(
                account=sim_account,
                order=sim_order,
                event="fill",
                at=now,
                price=price,
                qty=ONE,
                order_status="filled",
                order_qty=ONE,
                order_filled_qty=ONE,
                order_filled_avg_price=price,
            )
            for sim_order in sim_orders
        )
        orders = Order.objects.bulk_create(
            Order(
                user=user,
                broker_account=account,
                broker_order_id=str(sim_order.id),
                broker_updated_at=now,
                placed_via="api",
                **each,
            )
            for sim_order, each in zip(sim_orders, made, strict=True)
        )
        OrderEvent.objects.bulk_create(
            OrderEvent(
                order=order,
                event=event,
                status=status,
                filled_qty=filled,
                price=price if filled else None,
                source="api",
                at=now,
            )
            for order in orders
            for event, status, filled in (
                ("submitted", "pending_new", Decimal("0")),
                ("fill", "filled", ONE),
            )
        )
