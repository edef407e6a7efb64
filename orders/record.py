"""The desk's record of a broker's order: which fields it mirrors, when a snapshot may change
it (never backwards), and how each change is audited (an OrderEvent and its `order` frame).

The monotonic rule has two forms that must agree: `moves_forward` for one row in Python
(placement, cancel, replace, the reconciler) and `moves_forward_sql` for the sync's set-based
upsert (`orders.sync.upsert`). Likewise `event_name` and `event_name_sql`.
"""

from __future__ import annotations

from django.utils import timezone

from accounts.models import User
from tradedesk import rows
from tradedesk.broker import types

from . import events
from .models import Order, OrderEvent

# The broker's order fields the desk keeps as they are (the API shows them too).
MIRRORED_FIELDS = (
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
    "expires_at",
    "position_intent",
)

_TERMINAL_SQL = ", ".join(f"'{status}'" for status in sorted(types.TERMINAL_STATUSES))


def moves_forward(order: Order, snapshot: types.BrokerOrder) -> bool:
    """Whether the broker's `snapshot` may overwrite the stored `order`: never backwards.

    Never out of a terminal status the broker reported (a terminal status the desk concluded
    itself before the broker confirmed the order, `lost`, yields to the broker), never to a
    lower filled qty, never to an older snapshot. A snapshot as old as the stored one (the
    broker's times are truncated to microseconds: a tie says nothing about order of events)
    moves forward only if it shows progress: more filled, or a terminal status reached.
    """
    terminal = types.TERMINAL_STATUSES
    if order.status in terminal and snapshot.status != order.status and order.broker_order_id:
        return False
    if snapshot.filled_qty < order.filled_qty:
        return False
    if order.broker_updated_at is None or snapshot.updated_at > order.broker_updated_at:
        return True
    if snapshot.updated_at < order.broker_updated_at:
        return False
    return snapshot.filled_qty > order.filled_qty or (
        snapshot.status in terminal and order.status not in terminal
    )


def moves_forward_sql(stored: str, incoming: str) -> str:
    """`moves_forward` as a SQL condition over two row aliases with the Order table's columns
    (an upsert's target table and EXCLUDED). Rows without a broker id never meet it: the
    upsert matches on the broker id, and a `lost` order is claimed (back to pending) first."""
    terminal = _TERMINAL_SQL
    before, after = stored, incoming
    return (
        f"{after}.filled_qty >= {before}.filled_qty"
        f" AND ({before}.status NOT IN ({terminal}) OR {after}.status = {before}.status)"
        f" AND ({before}.broker_updated_at IS NULL"
        f" OR {after}.broker_updated_at > {before}.broker_updated_at"
        f" OR ({after}.broker_updated_at = {before}.broker_updated_at"
        f" AND ({after}.filled_qty > {before}.filled_qty"
        f" OR ({after}.status IN ({terminal}) AND {before}.status NOT IN ({terminal})))))"
    )


def apply_broker_order(
    order: Order,
    snapshot: types.BrokerOrder,
    *,
    source: str,
    actor: User | None = None,
    detail: dict | None = None,
) -> bool:
    """Bring one Order row up to the broker's snapshot; record an OrderEvent if it changed.

    Never moves backwards (`moves_forward`). Returns whether anything changed.
    """
    if not moves_forward(order, snapshot):
        return False
    before = _mirror(order, snapshot)
    order.save()
    return _audit_change(order, before, source=source, actor=actor, detail=detail)


# What the broker's snapshot sets on the row beside MIRRORED_FIELDS.
_BROKER_FIELDS = ("broker_order_id", "broker_created_at", "replaced_by", "replaces")
# What apply_first_answer writes.
_ANSWER_FIELDS = (*MIRRORED_FIELDS, *_BROKER_FIELDS, "broker_updated_at", "updated_at")


def apply_first_answer(
    order: Order, snapshot: types.BrokerOrder, *, source: str, actor: User | None = None
) -> bool:
    """apply_broker_order for the broker's answer to an order this process just recorded
    (pending, no broker id yet), without locking and re-reading the row: one UPDATE that
    holds only while the row is still as recorded. False, and the row untouched, when
    something else (the stream, the sync) applied an answer first: the caller applies this
    one under the row's lock (whose re-read sees theirs)."""
    recorded = {"status": order.status, "filled_qty": order.filled_qty, "broker_order_id": ""}
    if order.broker_order_id or not moves_forward(order, snapshot):
        return False
    before = _mirror(order, snapshot)
    order.updated_at = timezone.now()
    written = {name: getattr(order, name) for name in _ANSWER_FIELDS}
    if not rows.update(Order, written, {"id": order.pk, **recorded}):
        return False
    _audit_change(order, before, source=source, actor=actor)
    return True


def _mirror(order: Order, snapshot: types.BrokerOrder) -> tuple:
    """Set the snapshot's fields on the row (unsaved); returns what the audit compares."""
    before = (order.status, order.filled_qty, order.broker_order_id)
    for name in MIRRORED_FIELDS:
        setattr(order, name, getattr(snapshot, name))
    order.broker_order_id = snapshot.id
    order.broker_created_at = snapshot.created_at
    order.replaced_by = snapshot.replaced_by or ""
    order.replaces = snapshot.replaces or ""
    order.broker_updated_at = snapshot.updated_at
    return before


def _audit_change(
    order: Order, before: tuple, *, source: str, actor: User | None, detail: dict | None = None
) -> bool:
    changed = before != (order.status, order.filled_qty, order.broker_order_id)
    if changed:
        record_event(
            order,
            event_name(before[0], order.status),
            source=source,
            actor=actor,
            at=order.broker_updated_at,
            **(detail or {}),
        )
    return changed


# How a change to a status is recorded: these statuses name their own event; any other status
# is its own event, or "accepted" when it stayed the same (the broker confirmed the order).
_STATUS_EVENTS = {"filled": "fill", "partially_filled": "partial_fill"}
_SAME_STATUS_EVENT = "accepted"


def event_name(previous_status: str, status: str) -> str:
    """The OrderEvent name for an order going from `previous_status` ("" if new) to `status`."""
    if status in _STATUS_EVENTS:
        return _STATUS_EVENTS[status]
    return _SAME_STATUS_EVENT if status == previous_status else status


def event_name_sql(previous_status: str, status: str) -> str:
    """`event_name` as a SQL expression over two text-valued SQL expressions."""
    named = " ".join(f"WHEN '{own}' THEN '{event}'" for own, event in _STATUS_EVENTS.items())
    return (
        f"CASE {status} {named} WHEN {previous_status} THEN '{_SAME_STATUS_EVENT}'"
        f" ELSE {status} END"
    )


def record_event(
    order: Order, event: str, *, source: str, actor: User | None = None, at=None, **detail
) -> OrderEvent:
    """Audit one event of an order as it stands now; its frame reaches the stream after commit.

    An order whose events this process holds (`track_events`) gets it added there too, so
    its reply needs no read of what was just written."""
    recorded = OrderEvent(
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
    rows.insert([recorded])  # OrderEvent.objects.create, without building the INSERT each time
    events.publish_order_after_commit(order, event)
    held = getattr(order, "_prefetched_objects_cache", {}).get("events")
    if held is not None:
        held._result_cache.append(recorded)
        held._result_cache.sort(key=lambda each: (each.at, each.pk))  # OrderEvent's ordering
    if event in events.ORDER_EVENT_NOTICES:
        actor_id = actor.pk if actor else None
        events.announce(event, user_id=order.user_id, order=order, actor_id=actor_id, **detail)
    return recorded


def track_events(order: Order) -> None:
    """`order` was just created here, so it has no events but those record_event adds:
    order.events.all() answers from them, as after prefetch_related (the reply needs no
    read)."""
    events = order.events.all()
    events._result_cache = []
    events._prefetch_done = True
    order._prefetched_objects_cache = {"events": events}
