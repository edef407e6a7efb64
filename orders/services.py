"""Placing orders and keeping the desk's record in step with the broker."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import BrokerAccount, User
from accounts.services import broker_for
from tradedesk.broker import types
from tradedesk.broker.errors import BrokerUnavailable, OrderNotFound, OrderRejected, RateLimited

from . import events
from .models import Order, OrderEvent
from .validation import Issue, OrderInput, Verdict, validate_order

# Broker fields copied onto the desk's Order row as they are.
_MIRRORED_FIELDS = (
    "client_order_id",
    "symbol",
    "asset_class",
    "asset_id",
    "side",
    "type",
    "order_class",
    "time_in_force",
    "qty",
    "notional",
    "filled_qty",
    "filled_avg_price",
    "limit_price",
    "stop_price",
    "trail_price",
    "trail_percent",
    "hwm",
    "status",
    "extended_hours",
    "submitted_at",
    "filled_at",
    "canceled_at",
    "expired_at",
    "failed_at",
    "replaced_at",
)
# Input fields that make two submissions with one client_order_id "the same order".
_IDENTITY_FIELDS = (
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


class OrderInvalid(Exception):
    def __init__(self, verdict: Verdict):
        super().__init__("invalid order")
        self.verdict = verdict


class IdempotencyConflict(Exception):
    """The client_order_id is already used by a different order."""


@dataclass
class Placement:
    order: Order
    created: bool
    verdict: Verdict = field(default_factory=Verdict)


def _same_order(order: Order, order_input: OrderInput) -> bool:
    return all(getattr(order, name) == getattr(order_input, name) for name in _IDENTITY_FIELDS)


def apply_broker_order(
    order: Order, snapshot: types.BrokerOrder, *, source: str, actor: User | None = None
) -> bool:
    """Bring one Order row up to the broker's snapshot; record an OrderEvent if it changed.

    Never moves backwards: an older snapshot, a lower filled qty or a step out of a
    terminal state is ignored. Returns whether anything changed.
    """
    if order.broker_updated_at and snapshot.updated_at < order.broker_updated_at:
        return False
    if order.status in types.TERMINAL_STATUSES and snapshot.status != order.status:
        return False
    if snapshot.filled_qty < order.filled_qty:
        return False
    before = (order.status, order.filled_qty, order.broker_order_id)
    for name in _MIRRORED_FIELDS:
        setattr(order, name, getattr(snapshot, name))
    order.broker_order_id = snapshot.id
    order.replaced_by = snapshot.replaced_by or ""
    order.replaces = snapshot.replaces or ""
    order.broker_updated_at = snapshot.updated_at
    order.save()
    changed = before != (order.status, order.filled_qty, order.broker_order_id)
    if changed:
        _record_event(
            order,
            _event_name(before[0], snapshot),
            source=source,
            actor=actor,
            at=snapshot.updated_at,
        )
    return changed


def _event_name(previous_status: str, snapshot: types.BrokerOrder) -> str:
    if snapshot.status == "filled":
        return "fill"
    if snapshot.status == "partially_filled":
        return "partial_fill"
    if snapshot.status == previous_status:
        return "accepted"
    return snapshot.status


def _record_event(
    order: Order, event: str, *, source: str, actor: User | None = None, at=None, **detail
) -> OrderEvent:
    recorded = OrderEvent.objects.create(
        order=order,
        event=event,
        status=order.status,
        filled_qty=order.filled_qty,
        price=order.filled_avg_price,
        source=source,
        actor=actor,
        detail=detail,
        at=at or timezone.now(),
    )
    events.publish_order_after_commit(order, event)
    return recorded


def reconcile_pending(order: Order) -> None:
    """Resolve an order the broker never confirmed by looking it up by client_order_id."""
    broker = broker_for(order.broker_account)
    try:
        snapshot = broker.get_order_by_client_id(order.client_order_id)
    except OrderNotFound:
        return
    with transaction.atomic():
        apply_broker_order(order, snapshot, source="sync")


def place_order(
    *, user: User, broker_account: BrokerAccount, order_input: OrderInput, source: str = "api"
) -> Placement:
    """Validate, record, submit. The same client_order_id twice returns the first order."""
    client_order_id = order_input.client_order_id or str(uuid.uuid4())
    existing = Order.objects.filter(
        broker_account=broker_account, client_order_id=client_order_id
    ).first()
    if existing is not None:
        return _repeat(existing, order_input)

    broker = broker_for(broker_account)
    verdict = validate_order(order_input, broker=broker, user=user, broker_account=broker_account)
    if not verdict.valid:
        raise OrderInvalid(verdict)

    request = order_input.to_request(client_order_id)
    now = timezone.now()
    try:
        with transaction.atomic():
            order = Order.objects.create(
                user=user,
                broker_account=broker_account,
                client_order_id=client_order_id,
                status="pending_new",
                placed_via=source,
                submitted_at=now,
                **{name: getattr(order_input, name) for name in _IDENTITY_FIELDS},
            )
            _record_event(order, "submitted", source=source, actor=user, at=now)
    except IntegrityError:
        # A concurrent request with the same client_order_id won the race.
        existing = Order.objects.get(broker_account=broker_account, client_order_id=client_order_id)
        return _repeat(existing, order_input)

    try:
        snapshot = broker.submit_order(request)
    except RateLimited:
        order.delete()  # the broker refused before acting: nothing was placed
        raise
    except OrderRejected as exc:
        with transaction.atomic():
            order.status = "rejected"
            order.failed_at = timezone.now()
            order.save(update_fields=["status", "failed_at", "updated_at"])
            _record_event(
                order,
                "rejected",
                source=source,
                actor=user,
                code=str(exc.code or ""),
                message=exc.message,
            )
        verdict.errors.append(Issue("broker_rejected", None, exc.message))
        raise OrderInvalid(verdict) from exc
    except BrokerUnavailable:
        # The broker may have accepted it: keep it pending and look it up, never resubmit.
        with contextlib.suppress(BrokerUnavailable):
            reconcile_pending(order)
        order.refresh_from_db()
        if order.broker_order_id:
            return Placement(order=order, created=True, verdict=verdict)
        raise
    with transaction.atomic():
        apply_broker_order(order, snapshot, source=source, actor=user)
    return Placement(order=order, created=True, verdict=verdict)


def _repeat(existing: Order, order_input: OrderInput) -> Placement:
    if not _same_order(existing, order_input):
        raise IdempotencyConflict(existing.client_order_id)
    if not existing.broker_order_id and existing.status == "pending_new":
        reconcile_pending(existing)
        existing.refresh_from_db()
    return Placement(order=existing, created=False)
