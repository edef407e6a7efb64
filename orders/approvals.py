"""Four eyes (DESIGN.md "Operator workflow"): an order above its approval threshold passes the
gate, then waits as `pending_approval` (nothing at the broker) until an operator other than
its submitter approves it (services.approve_order submits it, re-judged by the gate), rejects
it, or APPROVAL_TIMEOUT ends it `expired`; its trader may cancel it meanwhile.

Every change takes the order's row lock and re-reads its status, so approve, reject, cancel
and expiry on one order never both win.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import BrokerAccount, User
from tradedesk.broker import Broker, types

from . import events
from .models import PENDING_APPROVAL, Order
from .record import record_event
from .validation import OrderInput, Verdict, cached_quote, expected_price

PERMISSION = "orders.approve_order"
REASON_MAX = 500
_LEGS = ("take_profit", "stop_loss")


class ApprovalForbidden(Exception):
    """The operator may not decide this order: `permission_denied` or `four_eyes` (their own)."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message)
        self.message = message
        self.code = code


class NotAwaitingApproval(Exception):
    """The order is not (or no longer) waiting for approval: decided, canceled or expired."""

    def __init__(self, order: Order):
        super().__init__(
            f"The order is {order.status}; only orders waiting for approval can be decided."
        )
        self.message = str(self)
        self.order = order


def threshold_for(user: User, broker_account: BrokerAccount) -> Decimal | None:
    """The notional above which the user's orders on the account wait for approval (None: no
    approval): the most specific setting wins, so an operator can raise it for a trusted
    account as well as lower it."""
    for threshold in (broker_account.approval_notional, user.approval_notional):
        if threshold is not None:
            return threshold
    return settings.APPROVAL_NOTIONAL


def notional_of(order_input: OrderInput, quote: types.Quote | None) -> Decimal | None:
    """The order's dollar value: its notional, else qty at the price the gate judged it by
    (limit, stop, else the market). None when there is no price to tell."""
    if order_input.notional is not None:
        return order_input.notional
    price = expected_price(order_input, quote)
    return None if price is None or order_input.qty is None else order_input.qty * price


def expires_at(order: Order) -> datetime:
    return order.created_at + timedelta(seconds=settings.APPROVAL_TIMEOUT)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def hold_if_needed(order: Order, request: OrderInput, broker: Broker) -> Order:
    """Under the gate's lock, just recorded: keep the order waiting when it is above its
    threshold (an order whose value can't be told waits too). Its legs go in the audit
    event, as the row doesn't keep them and approval submits the order as asked."""
    threshold = threshold_for(order.user, order.broker_account)
    if threshold is None:
        return order
    notional = notional_of(request, cached_quote(broker, request.symbol))
    if notional is not None and notional <= threshold:
        return order
    order.status = PENDING_APPROVAL
    order.save(update_fields=["status", "updated_at"])
    legs = {
        name: {"limit_price": _text(leg.limit_price), "stop_price": _text(leg.stop_price)}
        for name in _LEGS
        if (leg := getattr(request, name)) is not None
    }
    record_event(
        order,
        "approval_requested",
        source=order.placed_via,
        actor=order.user,
        notional=_text(notional),
        threshold=_text(threshold),
        expires_at=expires_at(order).isoformat(),
        legs=legs,
    )
    events.announce(
        "approval_needed",
        user_id=order.user_id,
        order=order,
        actor_id=order.user_id,
        notional=_text(notional),
        threshold=_text(threshold),
    )
    return order


def requested(order: Order) -> dict:
    """What hold_if_needed recorded: notional, threshold, expires_at, legs."""
    event = order.events.filter(event="approval_requested").first()
    return event.detail if event else {}


def order_input_of(order: Order) -> OrderInput:
    """The order as its trader asked for it (client_order_id and legs included)."""
    legs = requested(order).get("legs", {})
    return OrderInput(
        symbol=order.symbol,
        side=order.side,
        type=order.type,
        time_in_force=order.time_in_force,
        client_order_id=order.client_order_id,
        qty=order.qty,
        notional=order.notional,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        trail_price=order.trail_price,
        trail_percent=order.trail_percent,
        extended_hours=order.extended_hours,
        order_class=order.order_class,
        **{
            name: types.LegRequest(
                **{key: None if value is None else Decimal(value) for key, value in leg.items()}
            )
            for name, leg in legs.items()
        },
    )


def ensure_may_decide(operator: User, order: Order) -> None:
    if not operator.is_active or not operator.is_staff or not operator.has_perm(PERMISSION):
        raise ApprovalForbidden(
            "Deciding approvals needs the approve_order permission.", code="permission_denied"
        )
    if operator.pk == order.user_id:
        raise ApprovalForbidden(
            "An order needs a second operator: you cannot decide your own.", code="four_eyes"
        )


def _locked(order: Order) -> Order:
    return Order.objects.select_for_update().select_related("user").get(pk=order.pk)


def _overdue(order: Order, now: datetime) -> bool:
    return now >= expires_at(order)


def _end(order: Order, status: str, event: str, *, source: str, actor: User | None, **detail):
    """Close a waiting order (row locked by the caller) and audit it."""
    now = timezone.now()
    order.status = status
    stamp = {"canceled": "canceled_at", "expired": "expired_at", "rejected": "failed_at"}[status]
    setattr(order, stamp, now)
    order.save(update_fields=["status", stamp, "updated_at"])
    record_event(order, event, source=source, actor=actor, at=now, **detail)
    if event != "canceled":  # the trader canceled it themself: nothing to tell them
        decision = "expired" if status == "expired" else "rejected"
        events.announce(
            "approval_decided",
            user_id=order.user_id,
            order=order,
            actor_id=actor.pk if actor else None,
            decision=decision,
            **detail,
        )


def expire_if_overdue(order: Order) -> Order:
    """The order as it stands now, ended `expired` first if its approval timed out."""
    with transaction.atomic():
        current = _locked(order)
        if current.status == PENDING_APPROVAL and _overdue(current, timezone.now()):
            _end(current, "expired", "approval_expired", source="system", actor=None)
    return current


def expire_overdue() -> int:
    """End every order whose approval timed out (the periodic task); how many ended."""
    cutoff = timezone.now() - timedelta(seconds=settings.APPROVAL_TIMEOUT)
    ended = 0
    for order in Order.objects.filter(status=PENDING_APPROVAL, created_at__lte=cutoff):
        ended += expire_if_overdue(order).status == "expired"
    return ended


def waiting(order: Order) -> Order:
    """The order, still waiting (its timeout checked); else NotAwaitingApproval."""
    current = expire_if_overdue(order)
    if current.status != PENDING_APPROVAL:
        raise NotAwaitingApproval(current)
    return current


def claim(order: Order, operator: User, *, source: str) -> Order:
    """Inside approve's gate, under its lock: the waiting order becomes a pending submission
    (the reconciler's from here on, like any order on its way to the broker)."""
    current = _locked(order)
    if current.status != PENDING_APPROVAL:
        raise NotAwaitingApproval(current)
    now = timezone.now()
    current.status = "pending_new"
    current.submitted_at = now
    current.save(update_fields=["status", "submitted_at", "updated_at"])
    record_event(current, "approved", source=source, actor=operator, at=now)
    events.announce(
        "approval_decided",
        user_id=current.user_id,
        order=current,
        actor_id=operator.pk,
        decision="approved",
    )
    return current


def refuse(order: Order, operator: User, verdict: Verdict, *, source: str) -> Order:
    """The gate refused the order at approval: it ends rejected, the refusal recorded."""
    with transaction.atomic():
        current = _locked(order)
        if current.status == PENDING_APPROVAL:
            _end(
                current,
                "rejected",
                "approval_refused",
                source=source,
                actor=operator,
                reason="; ".join(issue.message for issue in verdict.errors),
                codes=[issue.code for issue in verdict.errors],
            )
    return current


def reject_order(order: Order, operator: User, reason: str, *, source: str) -> Order:
    """An operator (with the permission, not the submitter) rejects a waiting order."""
    ensure_may_decide(operator, order)
    reason = reason.strip()
    if not reason or len(reason) > REASON_MAX:
        raise ValueError(f"A reason of 1 to {REASON_MAX} characters is required.")
    waiting(order)
    with transaction.atomic():
        current = _locked(order)
        if current.status != PENDING_APPROVAL:
            raise NotAwaitingApproval(current)
        _end(current, "rejected", "approval_rejected", source=source, actor=operator, reason=reason)
    return current


def withdraw(order: Order, *, source: str, actor: User | None) -> Order | None:
    """The trader cancels a waiting order (nothing at the broker to cancel). None when it
    stopped waiting meanwhile (approved: the caller cancels it at the broker)."""
    with transaction.atomic():
        current = _locked(order)
        if current.status != PENDING_APPROVAL:
            return None
        _end(current, "canceled", "canceled", source=source, actor=actor)
    return current
