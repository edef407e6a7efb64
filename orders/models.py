"""The desk's own record of every order, every status change and position snapshots."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from tradedesk.broker import types
from tradedesk.symbols import SYMBOL_RE
from tradedesk.template_filters import plain

DECIMAL = {"max_digits": 24, "decimal_places": 9}
# The broker's names (status, class, side, type, time in force, intent): room for the ones it
# adds later, which are stored as they came.
BROKER_NAME = 32
SOURCES = ("api", "page", "admin", "sync", "stream", "system", "gateway")
# Statuses only the desk gives (the broker never sees such an order): an order waiting for an
# operator's approval is open (it counts against limits and buying power) but not at the broker.
PENDING_APPROVAL = "pending_approval"
STATUSES = (*types.ORDER_STATUSES, PENDING_APPROVAL)
# An order body's own fields (bracket legs aside), as an order and a template store them.
ORDER_TERMS = (
    "symbol",
    "side",
    "type",
    "time_in_force",
    "qty",
    "notional",
    "limit_price",
    "stop_price",
    "trail_price",
    "trail_percent",
    "extended_hours",
    "order_class",
)


def _choices(values):
    return [(value, value) for value in values]


def _one_of(field: str, values) -> models.CheckConstraint:
    return models.CheckConstraint(
        condition=models.Q(**{f"{field}__in": list(values)}), name=f"%(class)s_{field}_valid"
    )


class Order(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="orders"
    )
    broker_account = models.ForeignKey(
        "accounts.BrokerAccount", on_delete=models.PROTECT, related_name="orders"
    )
    # Empty until the broker has confirmed the order (a submission that timed out is
    # reconciled by client_order_id).
    broker_order_id = models.CharField(max_length=64, blank=True, default="")
    client_order_id = models.CharField(max_length=128)
    symbol = models.CharField(max_length=16)
    asset_class = models.CharField(max_length=16, default="us_equity")
    asset_id = models.CharField(max_length=64, blank=True, default="")
    side = models.CharField(max_length=BROKER_NAME, blank=True, choices=_choices(types.ORDER_SIDES))
    type = models.CharField(max_length=BROKER_NAME, choices=_choices(types.ORDER_TYPES))
    # The broker's vocabulary keeps its choices for display only: a value the broker adds
    # (Alpaca's `pending_review`, `mleg`) is stored as it came, so no check constraint names it.
    order_class = models.CharField(
        max_length=BROKER_NAME, choices=_choices(types.ORDER_CLASSES), default="simple"
    )
    time_in_force = models.CharField(max_length=BROKER_NAME, choices=_choices(types.TIME_IN_FORCE))
    qty = models.DecimalField(**DECIMAL, null=True, blank=True)
    notional = models.DecimalField(**DECIMAL, null=True, blank=True)
    filled_qty = models.DecimalField(**DECIMAL, default=0)
    filled_avg_price = models.DecimalField(**DECIMAL, null=True, blank=True)
    limit_price = models.DecimalField(**DECIMAL, null=True, blank=True)
    stop_price = models.DecimalField(**DECIMAL, null=True, blank=True)
    trail_price = models.DecimalField(**DECIMAL, null=True, blank=True)
    trail_percent = models.DecimalField(**DECIMAL, null=True, blank=True)
    hwm = models.DecimalField(**DECIMAL, null=True, blank=True)
    status = models.CharField(max_length=BROKER_NAME, choices=_choices(STATUSES))
    extended_hours = models.BooleanField(default=False)
    position_intent = models.CharField(max_length=BROKER_NAME, blank=True, default="")
    submitted_at = models.DateTimeField(null=True, blank=True)
    filled_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    replaced_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # The broker's created_at (empty until the broker confirmed the order).
    broker_created_at = models.DateTimeField(null=True, blank=True)
    # Broker order ids of the replacement chain (the other order may not be synced yet).
    replaced_by = models.CharField(max_length=64, blank=True, default="")
    replaces = models.CharField(max_length=64, blank=True, default="")
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="legs"
    )
    # The broker's updated_at for the snapshot stored here: older snapshots never overwrite it.
    broker_updated_at = models.DateTimeField(null=True, blank=True)
    placed_via = models.CharField(max_length=8, choices=_choices(SOURCES), default="api")
    # A hash of the whole body the desk was asked to place (legs included): a repeated
    # client_order_id is the same order only with the same body. Empty for synced orders
    # (a database default too: the sync's set-based INSERT names its own columns).
    request_fingerprint = models.CharField(max_length=64, blank=True, default="", db_default="")
    # When the desk recorded an order it placed; for an order brought in by the sync or the
    # stream, the broker's created_at. History order, date filters and cursors read this.
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [("approve_order", "Can approve or reject orders waiting for approval")]
        constraints = [
            models.UniqueConstraint(
                fields=["broker_account", "broker_order_id"],
                condition=~models.Q(broker_order_id=""),
                name="order_broker_id_unique",
            ),
            models.UniqueConstraint(
                fields=["broker_account", "client_order_id"], name="order_client_id_unique"
            ),
            # Only the desk's own vocabulary is checked: side, type, time in force, class and
            # status are the broker's, stored as they came (an mleg order has no side).
            _one_of("placed_via", SOURCES),
            models.CheckConstraint(
                condition=models.Q(qty__isnull=False) | models.Q(notional__isnull=False),
                name="order_qty_or_notional",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="order_user_created"),
            models.Index(fields=["symbol", "-created_at"], name="order_symbol_created"),
            models.Index(fields=["status", "-created_at"], name="order_status_created"),
            models.Index(fields=["user", "symbol"], name="order_user_symbol"),
            # The day-trade count's read: an account's orders with fills, by last change.
            models.Index(
                fields=["broker_account", "updated_at"],
                condition=models.Q(filled_qty__gt=0),
                name="order_account_filled",
            ),
            # The gate's exposure read: only open orders are in it, so it stays as small as
            # the book however many orders the account filled.
            models.Index(
                fields=["broker_account", "symbol"],
                condition=~models.Q(status__in=sorted(types.TERMINAL_STATUSES)),
                name="order_open_account_symbol",
            ),
            # MAX_DAILY_TRADES' count: the user's orders placed through the desk, by time.
            models.Index(
                fields=["user", "created_at"],
                condition=models.Q(parent__isnull=True) & ~models.Q(placed_via="sync"),
                name="order_user_placed",
            ),
        ]

    def __str__(self) -> str:
        amount = plain(self.qty) if self.qty is not None else f"${plain(self.notional)}"
        return f"{self.side} {amount} {self.symbol} {self.type} ({self.status})"

    @property
    def is_open(self) -> bool:
        return types.is_open_status(self.status)

    @property
    def is_unconfirmed(self) -> bool:
        """Recorded as pending, and the broker's answer never came (no broker id yet)."""
        return self.status == "pending_new" and not self.broker_order_id


class OrderEvent(models.Model):
    """One row per status change or action: the order's history and the audit trail.

    `status` and `filled_qty` are the order's after the event. For an execution the broker
    reported (a `fill` or `partial_fill` with an `execution_id`), `price` and `qty` are that
    execution's own price and quantity and `at` its time; for any other event `price` is the
    order's average fill price then and `qty` what the event names (if anything).
    """

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    event = models.CharField(max_length=32)
    status = models.CharField(max_length=BROKER_NAME, choices=_choices(STATUSES))
    filled_qty = models.DecimalField(**DECIMAL, default=0)
    price = models.DecimalField(**DECIMAL, null=True, blank=True)
    qty = models.DecimalField(**DECIMAL, null=True, blank=True)
    # The broker's id of the execution (fills only): one event per execution, however often
    # the broker delivers it.
    execution_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    source = models.CharField(max_length=8, choices=_choices(SOURCES))
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who acted; empty when the system (sync, stream) did.",
    )
    detail = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            _one_of("source", SOURCES),
            # An execution belongs to one order, and an order to one broker account.
            models.UniqueConstraint(
                fields=["order", "execution_id"],
                condition=~models.Q(execution_id=""),
                name="order_event_execution_unique",
            ),
        ]
        indexes = [models.Index(fields=["order", "at"], name="order_event_order_at")]

    def __str__(self) -> str:
        return f"{self.event} → {self.status} ({self.source})"


class PositionSnapshot(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="position_snapshots"
    )
    broker_account = models.ForeignKey(
        "accounts.BrokerAccount", on_delete=models.CASCADE, related_name="position_snapshots"
    )
    symbol = models.CharField(max_length=16)
    qty = models.DecimalField(**DECIMAL)
    side = models.CharField(max_length=8, choices=[("long", "long"), ("short", "short")])
    avg_entry_price = models.DecimalField(**DECIMAL)
    current_price = models.DecimalField(**DECIMAL)
    market_value = models.DecimalField(**DECIMAL)
    cost_basis = models.DecimalField(**DECIMAL)
    unrealized_pl = models.DecimalField(**DECIMAL)
    unrealized_plpc = models.DecimalField(**DECIMAL)
    snapshot_at = models.DateTimeField()

    class Meta:
        constraints = [_one_of("side", ("long", "short"))]
        indexes = [
            models.Index(fields=["user", "-snapshot_at"], name="snapshot_user_time"),
            models.Index(fields=["symbol", "-snapshot_at"], name="snapshot_symbol_time"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {plain(self.qty)} @ {self.snapshot_at:%Y-%m-%d %H:%M}"


HALT_SCOPES = ("desk", "user", "broker_account")
HALT_MODES = ("halted", "reducing")


class TradingHalt(models.Model):
    """An operator's kill switch for the whole desk, one user or one broker account.

    `halted` refuses every new order; `reducing` accepts only orders that shrink a position.
    Set and lifted through orders.halts (audited, announced): lifting sets active=False with
    who, when and why, so the record of who halted what, when and why stays.
    """

    SCOPE_DESK, SCOPE_USER, SCOPE_BROKER_ACCOUNT = HALT_SCOPES
    MODE_HALTED, MODE_REDUCING = HALT_MODES

    scope = models.CharField(max_length=16, choices=_choices(HALT_SCOPES))
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="trading_halts",
        help_text="Only for scope user.",
    )
    broker_account = models.ForeignKey(
        "accounts.BrokerAccount",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="trading_halts",
        help_text="Only for scope broker_account.",
    )
    mode = models.CharField(max_length=8, choices=_choices(HALT_MODES), default="halted")
    reason = models.CharField(max_length=255, help_text="Shown to traders whose orders it refuses.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    active = models.BooleanField(default=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    lifted_at = models.DateTimeField(null=True, blank=True)
    lift_reason = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        constraints = [
            _one_of("scope", HALT_SCOPES),
            _one_of("mode", HALT_MODES),
            models.CheckConstraint(
                condition=(
                    models.Q(scope="desk", user__isnull=True, broker_account__isnull=True)
                    | models.Q(scope="user", user__isnull=False, broker_account__isnull=True)
                    | models.Q(
                        scope="broker_account", user__isnull=True, broker_account__isnull=False
                    )
                ),
                name="trading_halt_target_matches_scope",
                violation_error_message=(
                    "A desk halt has no target; a user halt needs exactly a user; "
                    "a broker-account halt needs exactly a broker account."
                ),
            ),
        ]
        indexes = [models.Index(fields=["active", "scope"], name="trading_halt_active_scope")]

    def __str__(self) -> str:
        target = {
            self.SCOPE_DESK: "the desk",
            self.SCOPE_USER: f"user {self.user}",
            self.SCOPE_BROKER_ACCOUNT: f"account {self.broker_account}",
        }.get(self.scope, self.scope)
        state = "" if self.active else " (lifted)"
        return f"{self.mode}: {target}{state}"


SYNC_STATUSES = ("queued", "running", "done", "skipped", "failed")
SYNC_TRIGGERS = ("schedule", "api", "admin")


class SyncRun(models.Model):
    """One order sync of a broker account (or of all a user's accounts): progress and result."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sync_runs"
    )
    # Empty: every active broker account of the user.
    broker_account = models.ForeignKey(
        "accounts.BrokerAccount",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="sync_runs",
    )
    trigger = models.CharField(max_length=8, choices=_choices(SYNC_TRIGGERS), default="schedule")
    status = models.CharField(max_length=8, choices=_choices(SYNC_STATUSES), default="queued")
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    # "<user>:<account or all>" while a requested run is queued or running, else empty: the
    # unique index makes a second request for the same accounts answer this run (coalesced).
    coalesce_key = models.CharField(
        max_length=48, null=True, blank=True, unique=True, editable=False
    )
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [_one_of("status", SYNC_STATUSES), _one_of("trigger", SYNC_TRIGGERS)]
        indexes = [models.Index(fields=["user", "-queued_at"], name="sync_run_user_queued")]

    def __str__(self) -> str:
        return f"sync {self.id} ({self.status})"


class OrderSyncLease(models.Model):
    """The database lock that keeps two syncs of one account apart when there is no Redis.

    A lease rather than a row lock: a sync commits batch by batch, and a worker killed
    mid-sync must not block the account for longer than the lease.
    """

    broker_account = models.OneToOneField(
        "accounts.BrokerAccount",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="sync_lease",
    )
    holder = models.CharField(max_length=64, blank=True, default="")
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"sync lease of account {self.broker_account_id}"


TEMPLATE_NAME_MAX = 80
# The bracket legs' prices as a template keeps them: column -> (leg, price) of the order body.
TEMPLATE_LEG_COLUMNS = {
    "take_profit_limit_price": ("take_profit", "limit_price"),
    "stop_loss_stop_price": ("stop_loss", "stop_price"),
    "stop_loss_limit_price": ("stop_loss", "limit_price"),
}


def validate_positive(value) -> None:
    if value is not None and value <= 0:
        raise ValidationError("Must be greater than zero.", code="not_positive")


_TEMPLATE_DECIMAL = {**DECIMAL, "null": True, "blank": True, "validators": [validate_positive]}


class OrderTemplate(models.Model):
    """A ticket saved under a name. Saving checks only that its fields are well formed (known
    names, positive numbers); the gate judges it each time an order is placed from it."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="order_templates"
    )
    name = models.CharField(max_length=TEMPLATE_NAME_MAX)
    # None: the owner's default account when placing. Deleted with its account (never moved
    # to another one silently).
    broker_account = models.ForeignKey(
        "accounts.BrokerAccount",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="order_templates",
    )
    symbol = models.CharField(
        max_length=16,
        validators=[
            RegexValidator(
                rf"\A{SYMBOL_RE.pattern}\Z", "Not a valid symbol.", code="invalid_symbol"
            )
        ],
    )
    side = models.CharField(max_length=8, choices=_choices(types.ORDER_SIDES))
    type = models.CharField(max_length=16, choices=_choices(types.ORDER_TYPES))
    time_in_force = models.CharField(
        max_length=8, choices=_choices(types.TIME_IN_FORCE), default="day"
    )
    order_class = models.CharField(
        max_length=8, choices=_choices(types.ORDER_CLASSES), default="simple"
    )
    # Neither is allowed: the quantity is then given when placing.
    qty = models.DecimalField(**_TEMPLATE_DECIMAL)
    notional = models.DecimalField(**_TEMPLATE_DECIMAL)
    limit_price = models.DecimalField(**_TEMPLATE_DECIMAL)
    stop_price = models.DecimalField(**_TEMPLATE_DECIMAL)
    trail_price = models.DecimalField(**_TEMPLATE_DECIMAL)
    trail_percent = models.DecimalField(**_TEMPLATE_DECIMAL)
    extended_hours = models.BooleanField(default=False)
    take_profit_limit_price = models.DecimalField(**_TEMPLATE_DECIMAL)
    stop_loss_stop_price = models.DecimalField(**_TEMPLATE_DECIMAL)
    stop_loss_limit_price = models.DecimalField(**_TEMPLATE_DECIMAL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                "owner",
                Lower("name"),
                name="ordertemplate_name_unique",
                violation_error_code="duplicate_name",
                violation_error_message="You already have a template with this name.",
            ),
            _one_of("side", types.ORDER_SIDES),
            _one_of("type", types.ORDER_TYPES),
            _one_of("time_in_force", types.TIME_IN_FORCE),
            _one_of("order_class", types.ORDER_CLASSES),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        account = self.broker_account
        if account is not None and (account.user_id != self.owner_id or not account.is_active):
            raise ValidationError(
                {"broker_account": ValidationError("No such broker account.", code="not_owner")}
            )

    def validate_constraints(self, exclude=None) -> None:
        # A name already used is the name's error (forms show it by the field).
        try:
            super().validate_constraints(exclude)
        except ValidationError as error:
            errors = error.update_error_dict({})
            general = errors.pop(NON_FIELD_ERRORS, [])
            errors[NON_FIELD_ERRORS] = [e for e in general if e.code != "duplicate_name"]
            if len(errors[NON_FIELD_ERRORS]) < len(general):
                errors.setdefault("name", []).append(
                    next(e for e in general if e.code == "duplicate_name")
                )
            raise ValidationError({key: value for key, value in errors.items() if value}) from None

    def order_input(self, **overrides) -> types.OrderRequest:
        """The order this template describes (`overrides` replace its fields)."""
        legs = {leg: {} for leg, _ in TEMPLATE_LEG_COLUMNS.values()}
        for column, (leg, price) in TEMPLATE_LEG_COLUMNS.items():
            if getattr(self, column) is not None:
                legs[leg][price] = getattr(self, column)
        terms = {name: getattr(self, name) for name in ORDER_TERMS} | {
            leg: types.LegRequest(**prices) if prices else None for leg, prices in legs.items()
        }
        return types.OrderRequest(**(terms | overrides))

    def set_terms(self, terms: types.OrderRequest) -> None:
        """Take the order's fields (its client_order_id is never kept: each placement has its
        own)."""
        for name in ORDER_TERMS:
            setattr(self, name, getattr(terms, name))
        for column, (leg, price) in TEMPLATE_LEG_COLUMNS.items():
            setattr(self, column, getattr(getattr(terms, leg), price, None))
