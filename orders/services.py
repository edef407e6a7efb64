"""Placing orders and keeping the desk's record in step with the broker."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import BrokerAccount, User
from accounts.services import broker_for, require_second_factor_for_orders
from tradedesk import ratelimit, rows
from tradedesk.broker import Broker, types
from tradedesk.broker.errors import (
    BrokerUnavailable,
    NotCancelable,
    OrderNotFound,
    OrderRejected,
    RateLimited,
)
from tradedesk.rows import quoted

from . import approvals, events, selectors, throttles
from .errors import IdempotencyConflict, OrderInvalid, SubmissionPending, WarningsUnconfirmed
from .metrics import counted_refusals, timed_placement
from .models import ORDER_TERMS, PENDING_APPROVAL, Order
from .record import apply_broker_order, apply_first_answer, record_event, track_events
from .validation import (
    Issue,
    OrderInput,
    Verdict,
    account_changed,
    forget_account_state,
    halt_refusal,
    prefetch,
    validate_order,
)

# Input fields that make two submissions with one client_order_id "the same order".
_IDENTITY_FIELDS = ORDER_TERMS


class NotTheirOrder(Exception):
    """The order is not the user's: callers answer it as no such order (404, never 403)."""


class OrderNotModifiable(Exception):
    """The order can't be canceled or replaced (closed, or not confirmed by the broker yet).

    `retry_after`: whole seconds after which asking again gets a final answer (unconfirmed).
    """

    def __init__(self, message: str, *, code: str, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.retry_after = retry_after


@dataclass
class Placement:
    order: Order
    created: bool
    verdict: Verdict = field(default_factory=Verdict)


def _canonical(value):
    """A body value as the fingerprint sees it: 1 and 1.00 are the same number, an empty leg
    is no leg."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, types.LegRequest):
        leg = {name: _canonical(getattr(value, name)) for name in ("limit_price", "stop_price")}
        return leg if any(price is not None for price in leg.values()) else None
    return value


def request_fingerprint(order_input: OrderInput) -> str:
    """A hash of the whole order body (legs included) but its client_order_id: two
    submissions with one client_order_id are the same order only if these match."""
    body = {
        name: _canonical(getattr(order_input, name))
        for name in (*_IDENTITY_FIELDS, "take_profit", "stop_loss")
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _same_order(order: Order, order_input: OrderInput) -> bool:
    if order.request_fingerprint:
        return order.request_fingerprint == request_fingerprint(order_input)
    # Recorded before fingerprints (or brought in by sync): the fields the row keeps.
    return all(getattr(order, name) == getattr(order_input, name) for name in _IDENTITY_FIELDS)


def _apply_locked(
    order: Order, snapshot: types.BrokerOrder, *, source: str, actor: User | None = None
) -> Order:
    """Apply a snapshot to the row as stored now, so two requests never record one change twice."""
    with transaction.atomic():
        current = Order.objects.select_for_update().get(pk=order.pk)
        apply_broker_order(current, snapshot, source=source, actor=actor)
    return current


def reconcile_pending(order: Order, *, broker: Broker | None = None) -> Order:
    """Resolve an order the broker never confirmed by looking it up by client_order_id.

    Found: the broker's snapshot is applied (its event recorded). Not found, and recorded more
    than ORDER_PENDING_TIMEOUT seconds ago: the broker never got it — `rejected`, with a `lost`
    event giving the reason. Not found but younger: left pending (the answer may still come).
    The look-up's BrokerUnavailable and RateLimited propagate.
    """
    if not order.is_unconfirmed:
        return order
    broker = broker or broker_for(order.broker_account)
    try:
        snapshot = broker.get_order_by_client_id(order.client_order_id)
    except OrderNotFound:
        return _lost_if_overdue(order, timezone.now())
    # The gate counts unconfirmed orders against buying power itself; once confirmed, the
    # broker's account must be looked at again to include it.
    forget_account_state(order.broker_account)
    return _apply_locked(order, snapshot, source="sync")


def unconfirmed_retry_after(order: Order, now: datetime) -> int:
    """Seconds until an unconfirmed order is overdue (then the reconciler settles it)."""
    age = (now - order.created_at).total_seconds()
    return max(0, math.ceil(settings.ORDER_PENDING_TIMEOUT - age))


def _lost_if_overdue(order: Order, now: datetime) -> Order:
    if unconfirmed_retry_after(order, now) > 0:
        return order
    with transaction.atomic():
        current = Order.objects.select_for_update().get(pk=order.pk)
        if not current.is_unconfirmed:  # the broker's answer was applied meanwhile
            return current
        current.status = "rejected"
        current.failed_at = now
        current.save(update_fields=["status", "failed_at", "updated_at"])
        waited = round((now - current.created_at).total_seconds())
        record_event(
            current,
            "lost",
            source="system",
            at=now,
            reason=(
                f"The broker has no order with client_order_id {current.client_order_id!r} "
                f"{waited} s after the desk submitted it: it never reached the broker."
            ),
            client_order_id=current.client_order_id,
            pending_seconds=waited,
        )
    return current


@functools.cache
def _lock_accounts_sql() -> str:
    return (
        f"SELECT {quoted('id')} FROM {quoted(BrokerAccount._meta.db_table)}"  # noqa: S608
        f" WHERE {quoted('user_id')} = %s OR {quoted('id')} = %s ORDER BY {quoted('id')}"
        " FOR UPDATE"
    )


def _lock_accounts(user: User, broker_account: BrokerAccount) -> None:
    """The gate's lock: the user's broker-account rows (pk order, so two gates never wait on
    each other crosswise), held until the caller's transaction ends. Per account it keeps
    the account's limits; over all of the user's, MAX_DAILY_TRADES (counted per user).
    SQLite has no row locks: its IMMEDIATE transactions (settings) serialize writers, so
    there is nothing to read. Written as SQL once: the ORM took longer to build the statement
    than to run it."""
    if connection.features.has_select_for_update:
        rows.fetch(_lock_accounts_sql(), [user.pk, broker_account.pk])


@counted_refusals
def _gate(
    *,
    command: str,
    user: User,
    broker_account: BrokerAccount,
    broker: Broker,
    order_input: OrderInput,
    confirm_warnings: bool,
    record: Callable[[], Order],
    second_factor_verified: bool,
    replacing: Order | None = None,
    counted: User | None = None,
) -> tuple[Verdict, Order]:
    """The one door of every command that creates or enlarges exposure (place, replace).

    In order: the second factor where 2FA is required for orders (SecondFactorRequired: the
    door says whether its session or token passed one), the kill switch (`halted`), the
    per-user rate limit of `command` (counted to `counted`, else `user`), then under the
    account lock the shape checks, desk limits, buying power, wash-trade guard and warnings
    (validate_order), and `record` (the pending row) before the lock is let go, so the next
    command on the account is judged with this one counted. The broker is called
    after, outside the lock. Raises OrderInvalid, WarningsUnconfirmed (when there are
    warnings and not confirm_warnings) or ratelimit.RateLimitExceeded; a refusal writes
    nothing.
    """
    require_second_factor_for_orders(user, verified=second_factor_verified)
    halts = selectors.active_trading_halts(user, broker_account)
    refusal = halt_refusal(halts)
    if refusal is not None:
        raise OrderInvalid(Verdict(errors=[refusal]))
    throttles.limit(counted or user, command)
    prefetched = prefetch(broker, broker_account, order_input.symbol, user)
    with transaction.atomic():
        _lock_accounts(user, broker_account)
        verdict = validate_order(
            order_input,
            broker=broker,
            user=user,
            broker_account=broker_account,
            replacing=replacing,
            halts=halts,
            prefetched=prefetched,
        )
        if not verdict.valid:
            raise OrderInvalid(verdict)
        if verdict.warnings and not confirm_warnings:
            raise WarningsUnconfirmed(verdict)
        return verdict, record()


def check_order(
    *,
    user: User,
    broker_account: BrokerAccount,
    order_input: OrderInput,
    broker: Broker | None = None,
) -> Verdict:
    """Judge an order without submitting it (the ticket's and the validate endpoint's check).

    Counted against the user's validate rate (raises ratelimit.RateLimitExceeded)."""
    throttles.limit(user, "validate")
    return validate_order(
        order_input,
        broker=broker or broker_for(broker_account),
        user=user,
        broker_account=broker_account,
    )


@events.batched_publishing()
@timed_placement
def place_order(
    *,
    user: User,
    broker_account: BrokerAccount,
    order_input: OrderInput,
    source: str = "api",
    confirm_warnings: bool = True,
    second_factor_verified: bool = False,
) -> Placement:
    """Pass the gate, record, submit. The same client_order_id twice returns the first order.

    With confirm_warnings=False an order with warnings raises WarningsUnconfirmed instead of
    being placed (the pages' confirmation step); the API confirms them by placing (the
    warnings come back in its reply).
    """
    client_order_id = order_input.client_order_id
    if client_order_id:
        existing = _by_client_order_id(broker_account, client_order_id)
        if existing is not None:
            return _repeat(existing, order_input)
    else:
        client_order_id = str(uuid.uuid4())  # new, so nothing to look up

    broker = broker_for(broker_account)
    request = dataclasses.replace(order_input, client_order_id=client_order_id)
    try:
        verdict, order = _gate(
            command="place",
            user=user,
            broker_account=broker_account,
            broker=broker,
            order_input=request,
            confirm_warnings=confirm_warnings,
            second_factor_verified=second_factor_verified,
            record=lambda: approvals.hold_if_needed(
                record_submission(
                    user=user, broker_account=broker_account, request=request, source=source
                ),
                request,
                broker,
            ),
        )
    except (IntegrityError, OrderInvalid):
        # A concurrent request with the same client_order_id may have won the race (and be
        # what a limit now counts): the repeat gets that order, as if it had come second.
        existing = order_input.client_order_id and _by_client_order_id(
            broker_account, client_order_id
        )
        if not existing:
            raise
        return _repeat(existing, order_input)
    if order.status == PENDING_APPROVAL:  # nothing goes to the broker until it is approved
        return Placement(order=order, created=True, verdict=verdict)
    return _submit(order, request, broker, verdict, source=source, actor=user)


def _submit(
    order: Order,
    request: OrderInput,
    broker: Broker,
    verdict: Verdict,
    *,
    source: str,
    actor: User,
) -> Placement:
    """Send an order the gate passed (recorded pending) to the broker and record its answer."""
    try:
        snapshot = broker.submit_order(request)
        account_changed(broker, order.broker_account)
    except RateLimited:
        _unrecord(order)  # the broker refused before acting: nothing was placed
        raise
    except OrderRejected as exc:
        with transaction.atomic():
            order.status = "rejected"
            order.failed_at = timezone.now()
            order.save(update_fields=["status", "failed_at", "updated_at"])
            record_event(
                order,
                "rejected",
                source=source,
                actor=actor,
                code=str(exc.code or ""),
                message=exc.message,
            )
        verdict.errors.append(Issue("broker_rejected", None, exc.message))
        raise OrderInvalid(verdict) from exc
    except BrokerUnavailable as exc:
        # The broker may have accepted it: keep it pending and look it up, never resubmit.
        with contextlib.suppress(BrokerUnavailable):
            order = reconcile_pending(order)
        if order.broker_order_id:
            return Placement(order=order, created=True, verdict=verdict)
        raise SubmissionPending(order, exc) from exc
    with transaction.atomic():
        answered = apply_first_answer(order, snapshot, source=source, actor=actor)
    if not answered:  # the stream or a sync got there first
        order = _apply_locked(order, snapshot, source=source, actor=actor)
    return Placement(order=order, created=True, verdict=verdict)


def approve_order(*, order: Order, operator: User, source: str) -> Placement:
    """An operator other than its submitter, holding the approval permission, approves a
    waiting order: it passes the gate again as it is now (itself not counted: judged like a
    replace of itself, so it neither doubles its exposure nor uses another of the day's
    trades; the operator's approve rate is counted, not the trader's place rate), then goes
    to the broker as place_order sends it.

    Raises approvals.ApprovalForbidden, approvals.NotAwaitingApproval (decided, canceled or
    expired: it is expired here if overdue), OrderInvalid when the gate refuses it now (the
    order then ends rejected, the refusal recorded), ratelimit.RateLimitExceeded (it keeps
    waiting), and as place_order's submission.
    """
    approvals.ensure_may_decide(operator, order)
    order = approvals.waiting(order)
    request = approvals.order_input_of(order)
    broker = broker_for(order.broker_account)
    try:
        verdict, claimed = _gate(
            command="approve",
            user=order.user,
            broker_account=order.broker_account,
            broker=broker,
            order_input=request,
            confirm_warnings=True,
            # The trader passed it when placing; the order was recorded only after.
            second_factor_verified=True,
            replacing=order,
            record=lambda: approvals.claim(order, operator, source=source),
            counted=operator,
        )
    except OrderInvalid as invalid:
        approvals.refuse(order, operator, invalid.verdict, source=source)
        raise
    return _submit(claimed, request, broker, verdict, source=source, actor=operator)


def record_submission(
    *, user: User, broker_account: BrokerAccount, request: OrderInput, source: str
) -> Order:
    """Store an order as pending, with its audit event, before the broker sees it.

    Whatever happens at the broker next, the desk already holds the order and can look it
    up by its client_order_id. Raises IntegrityError when that id is already used.
    """
    now = timezone.now()
    # Inside the gate's transaction it joins it (no savepoint: a failure undoes the lot).
    with transaction.atomic(savepoint=False):
        order = Order(
            user=user,
            broker_account=broker_account,
            client_order_id=request.client_order_id,
            status="pending_new",
            placed_via=source,
            submitted_at=now,
            request_fingerprint=request_fingerprint(request),
            **{name: getattr(request, name) for name in _IDENTITY_FIELDS},
        )
        rows.insert([order])  # Order.objects.create, without building the INSERT each time
        track_events(order)
        record_event(order, "submitted", source=source, actor=user, at=now)
    return order


@functools.cache
def _by_client_order_id_sql() -> str:
    return (
        f"SELECT {rows.shape(Order).columns('o')} FROM {quoted(Order._meta.db_table)} o"  # noqa: S608
        f" WHERE o.{quoted('broker_account_id')} = %s AND o.{quoted('client_order_id')} = %s"
    )


def _unrecord(order: Order) -> None:
    """Take back an order recorded pending that the broker never acted on; a kept count of
    the user's orders today may hold it (selectors.PlacedCount)."""
    order.delete()
    selectors.forget_placed_count(order.user_id)


def _by_client_order_id(broker_account: BrokerAccount, client_order_id: str) -> Order | None:
    """The account's order with this client_order_id (unique per account), if any: read by
    SQL written once, as every order with a client's own id asks first."""
    found = rows.fetch(_by_client_order_id_sql(), [broker_account.pk, client_order_id])
    return rows.shape(Order).load(found[0]) if found else None


def _repeat(existing: Order, order_input: OrderInput) -> Placement:
    if not _same_order(existing, order_input):
        raise IdempotencyConflict(existing.client_order_id)
    if not existing.broker_order_id and existing.status == "pending_new":
        existing = reconcile_pending(existing)
    return Placement(order=existing, created=False)


# What a replace may change (Alpaca's PATCH /v2/orders/{id} fields).
REPLACEABLE_FIELDS = ("qty", "limit_price", "stop_price", "trail", "time_in_force")


def _ensure_owned(user: User, order: Order) -> None:
    if order.user_id != user.pk:
        raise NotTheirOrder("No such order.")


def _confirmed_open(order: Order, action: str) -> Order:
    """The order as the broker last reported it, if it can still be acted on.

    An unconfirmed order is reconciled first: found at the broker, it is acted on; overdue, it
    is `lost` (closed: nothing to act on); younger, the refusal says when to ask again.
    """
    order = reconcile_pending(order)
    if not order.is_open:
        raise OrderNotModifiable(
            f"The order is {order.status}; only open orders can be {action}.", code="order_closed"
        )
    if not order.broker_order_id:
        wait = max(1, unconfirmed_retry_after(order, timezone.now()))
        raise OrderNotModifiable(
            f"The broker has not confirmed this order yet; try again in {wait} s.",
            code="order_unconfirmed",
            retry_after=wait,
        )
    return order


def _refused(order: Order, broker: Broker, error: OrderRejected | OrderNotFound, code: str):
    """The broker refused because the desk's copy was stale: catch up, then explain."""
    with contextlib.suppress(BrokerUnavailable, OrderNotFound):
        _apply_locked(order, broker.get_order(order.broker_order_id), source="sync")
    return OrderNotModifiable(error.message, code=code)


def cancel_order(*, user: User, order: Order, source: str, actor: User | None) -> Order:
    """Ask the broker to cancel one of the user's open orders; the audit trail says who asked.

    Never blocked by the gate (a halted desk must be able to get out), but counted against the
    cancel rate of whoever asked (the actor, else the owner): raises
    ratelimit.RateLimitExceeded over it. Raises OrderNotModifiable
    when it is closed (or the broker says it can't be canceled), OrderRejected for other
    refusals, RateLimited and BrokerUnavailable as they come.
    """
    _ensure_owned(user, order)
    throttles.limit(actor or user, "cancel")
    if order.status == PENDING_APPROVAL:
        withdrawn = approvals.withdraw(order, source=source, actor=actor)
        if withdrawn is not None:
            return withdrawn
        order.refresh_from_db()  # approved meanwhile: cancel it at the broker
    order = _confirmed_open(order, "canceled")
    broker = broker_for(order.broker_account)
    try:
        broker.cancel_order(order.broker_order_id)
    except (NotCancelable, OrderNotFound) as exc:
        raise _refused(order, broker, exc, "not_cancelable") from exc
    forget_account_state(order.broker_account)
    record_event(
        order, "cancel_requested", source=source, actor=actor, previous_status=order.status
    )
    # Alpaca cancels asynchronously (pending_cancel); the stream or the next sync finishes it.
    with contextlib.suppress(BrokerUnavailable, OrderNotFound):
        order = _apply_locked(
            order, broker.get_order(order.broker_order_id), source=source, actor=actor
        )
    return order


def _current(order: Order, name: str):
    if name == "trail":  # one replace field for either trail kind, as Alpaca has it
        return order.trail_percent if order.trail_percent is not None else order.trail_price
    return getattr(order, name)


def _audit_text(value) -> str | None:
    """A value for the audit detail (JSON): decimals without their storage padding."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return None if value is None else str(value)


def would_be_order(order: Order, changes: types.ReplaceRequest) -> OrderInput:
    """The order a replace would make (Alpaca's replace is a new order): the old one's terms
    with the changes applied. The entry is judged on its own; a bracket's legs stay as they
    are (their structure is the broker's to check)."""
    trail_price, trail_percent = order.trail_price, order.trail_percent
    if changes.trail is not None:
        if trail_percent is not None:
            trail_percent = changes.trail
        else:
            trail_price = changes.trail
    return OrderInput(
        symbol=order.symbol,
        side=order.side,
        type=order.type,
        time_in_force=changes.time_in_force or order.time_in_force,
        qty=changes.qty if changes.qty is not None else order.qty,
        notional=order.notional,
        limit_price=changes.limit_price if changes.limit_price is not None else order.limit_price,
        stop_price=changes.stop_price if changes.stop_price is not None else order.stop_price,
        trail_price=trail_price,
        trail_percent=trail_percent,
        extended_hours=order.extended_hours,
    )


def _record_replacement(
    old: Order, would_be: OrderInput, client_order_id: str, *, source: str
) -> Order:
    """Under the gate's lock: the replacement as a pending row (exposure the next command
    counts), unless the old order closed meanwhile or another replace of it is under way."""
    current = Order.objects.get(pk=old.pk)
    if not current.is_open:
        raise OrderNotModifiable(
            f"The order is {current.status}; only open orders can be replaced.",
            code="order_closed",
        )
    in_flight = Order.objects.filter(
        broker_account=old.broker_account_id,
        replaces=old.broker_order_id,
        broker_order_id="",
        status="pending_new",
    )
    if in_flight.exists():
        raise OrderNotModifiable(
            "Another replace of this order is under way; try again shortly.",
            code="replace_in_progress",
        )
    return Order.objects.create(
        user=old.user,
        broker_account=old.broker_account,
        client_order_id=client_order_id,
        status="pending_new",
        placed_via=source,
        submitted_at=timezone.now(),
        replaces=old.broker_order_id,
        order_class=old.order_class,
        parent=old.parent,
        **{name: getattr(would_be, name) for name in _IDENTITY_FIELDS if name != "order_class"},
    )


def replace_order(
    *,
    user: User,
    order: Order,
    changes: types.ReplaceRequest,
    source: str,
    actor: User | None,
    confirm_warnings: bool = True,
    second_factor_verified: bool = False,
) -> Placement:
    """Replace an open order (Alpaca's semantics): the NEW order; the old one is `replaced`.

    The order it would become passes the same gate as a new one (place_order), without the
    old order counted against it; a refusal (OrderInvalid, WarningsUnconfirmed,
    RateLimitExceeded) leaves everything as it was. Otherwise raises like cancel_order.
    """
    _ensure_owned(user, order)
    order = _confirmed_open(order, "replaced")
    broker = broker_for(order.broker_account)
    would_be = would_be_order(order, changes)
    request = dataclasses.replace(changes, client_order_id=str(uuid.uuid4()))
    verdict, pending = _gate(
        command="replace",
        user=user,
        broker_account=order.broker_account,
        broker=broker,
        order_input=would_be,
        confirm_warnings=confirm_warnings,
        second_factor_verified=second_factor_verified,
        replacing=order,
        record=lambda: _record_replacement(order, would_be, request.client_order_id, source=source),
    )
    try:
        snapshot = broker.replace_order(order.broker_order_id, request)
    except (NotCancelable, OrderNotFound) as exc:
        _unrecord(pending)
        raise _refused(order, broker, exc, "not_replaceable") from exc
    except (OrderRejected, RateLimited):
        _unrecord(pending)  # refused before acting: nothing was replaced
        raise
    except BrokerUnavailable as exc:
        # The broker may have replaced it: keep the pending row for the reconciler.
        forget_account_state(order.broker_account)
        try:
            snapshot = broker.get_order_by_client_id(request.client_order_id)
        except (BrokerUnavailable, OrderNotFound):
            raise SubmissionPending(pending, exc) from exc
    forget_account_state(order.broker_account)
    changed = {
        name: {"from": _audit_text(_current(order, name)), "to": _audit_text(value)}
        for name in REPLACEABLE_FIELDS
        if (value := getattr(changes, name)) is not None
    }
    now = timezone.now()
    with transaction.atomic():
        old = Order.objects.select_for_update().get(pk=order.pk)
        new = Order.objects.select_for_update().get(pk=pending.pk)
        apply_broker_order(
            new,
            snapshot,
            source=source,
            actor=actor,
            detail={"replaces": old.broker_order_id, "changes": changed},
        )
        old.status = "replaced"
        old.replaced_by = snapshot.id
        old.replaced_at = now
        old.save(update_fields=["status", "replaced_by", "replaced_at", "updated_at"])
        record_event(
            old,
            "replaced",
            source=source,
            actor=actor,
            at=now,
            replaced_by=snapshot.id,
            replacement=new.pk,
            changes=changed,
        )
    return Placement(order=new, created=True, verdict=verdict)


# What a command on one order of many may meet and report instead of raising.
COMMAND_REFUSALS = (
    OrderNotModifiable,
    OrderRejected,
    BrokerUnavailable,
    RateLimited,
    ratelimit.RateLimitExceeded,
)


@dataclass
class CancelOutcome:
    """One order of a cancel-all: the order as it stands after, or why it was not canceled."""

    order: Order
    error: Exception | None = None


def cancel_all_orders(
    *, user: User, broker_account: BrokerAccount, source: str, actor: User | None
) -> list[CancelOutcome]:
    """Cancel every open order of the user's account, one cancel_order each (the same rate
    limit and audit as one cancel). A refusal is reported for that order, never raised."""
    return cancel_each(
        selectors.open_orders().filter(
            user=user, broker_account=broker_account, parent__isnull=True
        ),
        source=source,
        actor=actor,
    )


def cancel_each(orders, *, source: str, actor: User | None) -> list[CancelOutcome]:
    """cancel_order for each order, as its owner's; a refusal is that order's outcome."""
    outcomes = []
    for order in orders:
        try:
            outcomes.append(
                CancelOutcome(
                    cancel_order(user=order.user, order=order, source=source, actor=actor)
                )
            )
        except COMMAND_REFUSALS as error:
            outcomes.append(CancelOutcome(order, error))
    return outcomes


@dataclass
class CloseOutcome:
    """One position of a close-all: the closing order's placement, or why there is none."""

    symbol: str
    placement: Placement | None = None
    error: Exception | None = None


def close_all_positions(
    *,
    user: User,
    broker_account: BrokerAccount,
    source: str,
    cancel_orders: bool = False,
    second_factor_verified: bool = False,
) -> list[CloseOutcome]:
    """Close every position of the account, each by its own order through the gate (after
    canceling the open orders, if asked). A refusal is reported for that symbol, never raised."""
    if cancel_orders:
        cancel_all_orders(user=user, broker_account=broker_account, source=source, actor=user)
    outcomes = []
    for position in broker_for(broker_account).list_positions():
        try:
            placement = place_order(
                user=user,
                broker_account=broker_account,
                order_input=closing_order(position),
                source=source,
                second_factor_verified=second_factor_verified,
            )
        except (OrderInvalid, IdempotencyConflict, *COMMAND_REFUSALS) as error:
            outcomes.append(CloseOutcome(position.symbol, error=error))
            continue
        outcomes.append(CloseOutcome(position.symbol, placement=placement))
    return outcomes


class NoPosition(Exception):
    """The account holds no position in the symbol."""


def closing_order(position: types.Position, *, qty: Decimal | None = None) -> OrderInput:
    """The market order that closes `qty` of a position (all of it by default)."""
    held = abs(position.qty)
    return OrderInput(
        symbol=position.symbol,
        side="sell" if position.side == "long" else "buy",
        type="market",
        time_in_force="day",
        qty=held if qty is None else min(qty, held),
    )


def close_position(
    *,
    user: User,
    broker_account: BrokerAccount,
    symbol: str,
    qty: Decimal | None = None,
    source: str,
    second_factor_verified: bool = False,
) -> Placement:
    """Close (part of) a position with a market order placed THROUGH the gate: it shrinks
    exposure, so a `reducing` kill switch lets it pass; a `halted` one does not. Raises
    NoPosition, or as place_order."""
    positions = {p.symbol: p for p in broker_for(broker_account).list_positions()}
    if symbol not in positions:
        raise NoPosition(symbol)
    return place_order(
        user=user,
        broker_account=broker_account,
        order_input=closing_order(positions[symbol], qty=qty),
        source=source,
        second_factor_verified=second_factor_verified,
    )
