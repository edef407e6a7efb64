"""Every execution once, and account snapshots: what realized P&L and the equity curve read."""

from __future__ import annotations

from django.db import models

from tradedesk.template_filters import plain

DECIMAL = {"max_digits": 24, "decimal_places": 9}
FILL_SOURCES = ("stream", "activity", "backfill", "manual")
SNAPSHOT_KINDS = ("tick", "close", "rollup")


def _choices(values):
    return [(value, value) for value in values]


class Fill(models.Model):
    """One execution: the broker's execution id is unique within its broker account.

    `order` is empty when the broker reported an execution of an order the desk has not
    synced yet (`broker_order_id` links it later). `fee` is what the broker charged for it.
    """

    broker_account = models.ForeignKey(
        "accounts.BrokerAccount", on_delete=models.CASCADE, related_name="fills"
    )
    order = models.ForeignKey(
        "orders.Order", on_delete=models.SET_NULL, null=True, blank=True, related_name="fills"
    )
    broker_order_id = models.CharField(max_length=64, blank=True, default="")
    execution_id = models.CharField(max_length=64)
    symbol = models.CharField(max_length=16)
    side = models.CharField(max_length=8, choices=_choices(("buy", "sell")))
    qty = models.DecimalField(**DECIMAL)
    price = models.DecimalField(**DECIMAL)
    fee = models.DecimalField(**DECIMAL, default=0)
    at = models.DateTimeField()
    source = models.CharField(max_length=8, choices=_choices(FILL_SOURCES))
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["broker_account", "execution_id"], name="fill_account_execution_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(side__in=["buy", "sell"]), name="fill_side_valid"
            ),
            models.CheckConstraint(condition=models.Q(qty__gt=0), name="fill_qty_positive"),
        ]
        indexes = [
            models.Index(fields=["broker_account", "symbol", "at"], name="fill_account_symbol_at"),
            models.Index(fields=["broker_account", "at"], name="fill_account_at"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {plain(self.qty)} {self.symbol} @ {plain(self.price)}"


class AccountSnapshot(models.Model):
    """A broker account's equity at one moment: a scheduled tick, a session close, or a
    roll-up that stands for older ticks (the last of its hour or day)."""

    broker_account = models.ForeignKey(
        "accounts.BrokerAccount", on_delete=models.CASCADE, related_name="account_snapshots"
    )
    at = models.DateTimeField()
    kind = models.CharField(max_length=8, choices=_choices(SNAPSHOT_KINDS), default="tick")
    equity = models.DecimalField(**DECIMAL)
    cash = models.DecimalField(**DECIMAL)
    long_market_value = models.DecimalField(**DECIMAL)
    short_market_value = models.DecimalField(**DECIMAL)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=list(SNAPSHOT_KINDS)), name="snapshot_kind_valid"
            ),
            # One close per account and session: a second close tick is the same snapshot.
            models.UniqueConstraint(
                fields=["broker_account", "at"],
                condition=models.Q(kind="close"),
                name="snapshot_one_close",
            ),
        ]
        indexes = [models.Index(fields=["broker_account", "at"], name="snapshot_account_at")]

    def __str__(self) -> str:
        at = f"{self.at:%Y-%m-%d %H:%M}"
        return f"{self.broker_account_id} {plain(self.equity)} @ {at} ({self.kind})"


class FeeCharge(models.Model):
    """A fee the broker charged, once per broker account and activity id, and when it was
    spread over the fills it was charged for (`attached_at` empty: no recorded fill matches
    yet; each sync tries again)."""

    broker_account = models.ForeignKey(
        "accounts.BrokerAccount", on_delete=models.CASCADE, related_name="fee_charges"
    )
    activity_id = models.CharField(max_length=128)
    activity_type = models.CharField(max_length=16)
    sub_type = models.CharField(max_length=16, blank=True, default="")
    date = models.DateField()
    amount = models.DecimalField(**DECIMAL)
    symbol = models.CharField(max_length=32, blank=True, default="")
    broker_order_id = models.CharField(max_length=64, blank=True, default="")
    description = models.TextField(blank=True, default="")
    fill_count = models.PositiveIntegerField(default=0)
    attached_at = models.DateTimeField(null=True, blank=True)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["broker_account", "activity_id"], name="fee_charge_account_activity_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sub_type or self.activity_type} {plain(self.amount)} on {self.date}"
