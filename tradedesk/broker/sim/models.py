"""The paper exchange's own books: accounts, positions, orders and their events.

These are the exchange's state (what Alpaca would hold on its side), kept in the
database so every process sees the same book and a restart loses nothing. The desk's
own record of orders lives in the orders app and is filled from here like from any broker.
"""

from __future__ import annotations

import uuid

from django.db import models

from tradedesk.broker import types

_DECIMAL = {"max_digits": 24, "decimal_places": 9}


def _choices(values):
    return [(value, value) for value in values]


class SimAccount(models.Model):
    account_id = models.CharField(max_length=64, unique=True)
    cash = models.DecimalField(**_DECIMAL)
    # The instant through which the market has been matched against this account's orders.
    matched_at = models.DateTimeField(null=True, blank=True)
    # The equity at the session close `close_equity_at` (the account's last_equity), kept
    # once worked out: working it out reads the session's executions since.
    close_equity = models.DecimalField(**_DECIMAL, null=True, blank=True)
    close_equity_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"paper account {self.account_id}"


class SimPosition(models.Model):
    account = models.ForeignKey(SimAccount, on_delete=models.CASCADE, related_name="positions")
    symbol = models.CharField(max_length=16)
    qty = models.DecimalField(**_DECIMAL)  # negative when short
    avg_entry_price = models.DecimalField(**_DECIMAL)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "symbol"], name="sim_position_unique")
        ]


class SimOrder(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(SimAccount, on_delete=models.CASCADE, related_name="orders")
    client_order_id = models.CharField(max_length=128)
    symbol = models.CharField(max_length=16)
    side = models.CharField(max_length=8, choices=_choices(types.ORDER_SIDES))
    type = models.CharField(max_length=16, choices=_choices(types.ORDER_TYPES))
    time_in_force = models.CharField(max_length=8, choices=_choices(types.TIME_IN_FORCE))
    order_class = models.CharField(
        max_length=8, choices=_choices(types.ORDER_CLASSES), default="simple"
    )
    status = models.CharField(max_length=24, choices=_choices(types.ORDER_STATUSES))
    qty = models.DecimalField(**_DECIMAL, null=True)
    notional = models.DecimalField(**_DECIMAL, null=True)
    filled_qty = models.DecimalField(**_DECIMAL, default=0)
    filled_avg_price = models.DecimalField(**_DECIMAL, null=True)
    limit_price = models.DecimalField(**_DECIMAL, null=True)
    stop_price = models.DecimalField(**_DECIMAL, null=True)
    trail_price = models.DecimalField(**_DECIMAL, null=True)
    trail_percent = models.DecimalField(**_DECIMAL, null=True)
    hwm = models.DecimalField(**_DECIMAL, null=True)
    extended_hours = models.BooleanField(default=False)
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="legs"
    )
    replaces = models.UUIDField(null=True, blank=True)
    replaced_by = models.UUIDField(null=True, blank=True)
    # When the order became workable (submission; a leg's parent fill): matching starts here.
    active_at = models.DateTimeField(null=True, blank=True)
    # When a stop, stop-limit or trailing stop was triggered.
    triggered_at = models.DateTimeField(null=True, blank=True)
    # The quote second that last filled this order: one fill per quote, as size allows.
    last_fill_quote_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)
    filled_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    replaced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "client_order_id"], name="sim_order_client_id_unique"
            )
        ]
        indexes = [
            models.Index(fields=["account", "status"]),
            models.Index(fields=["account", "submitted_at"]),
        ]


class SimOrderEvent(models.Model):
    """The exchange's trade updates, in order (what Alpaca's trade_updates stream carries)."""

    account = models.ForeignKey(SimAccount, on_delete=models.CASCADE, related_name="events")
    order = models.ForeignKey(SimOrder, on_delete=models.CASCADE, related_name="events")
    event = models.CharField(max_length=24)
    price = models.DecimalField(**_DECIMAL, null=True)
    qty = models.DecimalField(**_DECIMAL, null=True)
    position_qty = models.DecimalField(**_DECIMAL, null=True)
    # The order as it stood right after this event (the stream carries that, not today's).
    order_status = models.CharField(max_length=24, default="")
    order_filled_qty = models.DecimalField(**_DECIMAL, null=True)
    order_filled_avg_price = models.DecimalField(**_DECIMAL, null=True)
    order_qty = models.DecimalField(**_DECIMAL, null=True)
    at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["account", "id"])]
