"""Order events for the stream: published from services, only after the commit."""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import logging
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.dispatch import Signal

from tradedesk.broker import types

from .models import Order

logger = logging.getLogger(__name__)


# Sent once the transaction that recorded executions (OrderEvents with an execution_id) of a
# broker account's orders has committed: kwargs broker_account_id, order_ids. Apps above orders
# (portfolio) listen; orders imports none of them.
execution_recorded = Signal()


def announce_executions_after_commit(broker_account_id: int, order_ids: list[int]) -> None:
    def send() -> None:
        for _, error in execution_recorded.send_robust(
            Order, broker_account_id=broker_account_id, order_ids=order_ids
        ):
            if error is not None:
                logger.error("execution receiver failed: %r", error)

    transaction.on_commit(send)


# What a person should hear about (notifications listen; orders imports none of them). Sent
# inside the transaction that makes it true, with kwarg notices: the Notices that one announce
# call made (a sync batch announces its fills at once, so listeners write in bulk). A listener
# stores what it makes in that transaction, so the fact and its notification commit or roll
# back together, and tells anyone outside (the stream, e-mail) only once it has committed.
NOTICE_KINDS = (
    "fill",
    "partial_fill",
    "rejected",
    "lost",
    "approval_needed",
    "approval_decided",
    "halt_on",
    "halt_off",
)
# OrderEvents whose name is also the notice they make (record.record_event, the sync's upsert).
ORDER_EVENT_NOTICES = frozenset({"fill", "partial_fill", "rejected", "lost"})
notice = Signal()


@dataclass(frozen=True)
class Notice:
    kind: str  # one of NOTICE_KINDS
    user_id: int | None  # the trader concerned; None when desk-wide (a desk halt)
    # The order as it stands: its row, or (from the sync) the broker's snapshot just written
    # to row order_id, so a batch reads nothing back.
    order: Order | types.BrokerOrder | None = None
    order_id: int | None = None
    actor_id: int | None = None  # who acted; None for the system
    details: dict = field(default_factory=dict)  # JSON-able

    def __post_init__(self) -> None:
        if self.kind not in NOTICE_KINDS:
            raise ValueError(f"unknown notice kind {self.kind!r}")


def announce(
    kind: str,
    *,
    user_id: int | None,
    order: Order | None = None,
    actor_id: int | None = None,
    **details,
) -> None:
    order_id = order.pk if order is not None else None
    announce_all(
        [Notice(kind, user_id, order=order, order_id=order_id, actor_id=actor_id, details=details)]
    )


def announce_all(notices: list[Notice]) -> None:
    """Send `notice` now, in the caller's transaction (a listener's failure is logged: the
    fact stands without its notification)."""
    if not notices:
        return
    for _, error in notice.send_robust(Order, notices=notices):
        if error is not None:
            logger.error("notice receiver failed: %r", error)


def user_group(user_id: int) -> str:
    return f"orders.user.{user_id}"


def order_message(order: Order, event: str) -> dict:
    return order_frame(
        order,
        event,
        pk=order.pk,
        broker_order_id=order.broker_order_id,
        timestamp=order.updated_at.isoformat() if order.updated_at else None,
    )


def order_frame(
    order: Order | types.BrokerOrder,
    event: str,
    *,
    pk: int,
    broker_order_id: str,
    timestamp: str | None,
) -> dict:
    """The stream's `order` frame, from an Order or the broker snapshot just written to it."""
    return {
        "type": "order",
        "id": pk,
        "broker_order_id": broker_order_id,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side,
        "order_type": order.type,
        "status": order.status,
        "qty": _wire_text(order.qty),
        "filled_qty": _wire_text(order.filled_qty),
        "filled_avg_price": _wire_text(order.filled_avg_price),
        "event": event,
        "timestamp": timestamp,
    }


def _wire_text(value) -> str | None:
    """A value as the `order` frame carries it: the stored decimal's own string."""
    return None if value is None else str(value)


def publish_order_after_commit(order: Order, event: str) -> None:
    publish_after_commit(order.user_id, [order_message(order, event)])


# The frames of a `batched_publishing()` block, per user in publishing order.
_batch: ContextVar[dict[int, list[dict]] | None] = ContextVar("order_frames", default=None)


def publish_after_commit(user_id: int, messages: list[dict]) -> None:
    """Send `order` frames to the user's stream connections once the transaction commits,
    without waiting for the channel layer (inside `batched_publishing()`: when it ends).

    One frame goes as {"type": "order.update", "message": frame}; several (a sync batch, a
    placement's events) go as ONE {"type": "order.updates", "messages": [frame, ...]}, which
    a consumer unpacks in order: a group_send per frame would cost a channel-layer round
    trip each and overrun the channel's capacity (the layer drops what doesn't fit).
    """
    if messages:
        transaction.on_commit(lambda: _committed(user_id, messages))


def _committed(user_id: int, messages: list[dict]) -> None:
    batch = _batch.get()
    if batch is None:
        _send(user_id, messages)
    else:
        batch.setdefault(user_id, []).extend(messages)


@contextlib.contextmanager
def batched_publishing() -> Iterator[None]:
    """Hold the frames of what commits inside the block and send them as it ends, one send
    per user (a placement commits its pending record and the broker's answer apart)."""
    batch: dict[int, list[dict]] = {}
    token = _batch.set(batch)
    try:
        yield
    finally:
        _batch.reset(token)
        for user_id, messages in batch.items():
            _send(user_id, messages)


def _send(user_id: int, messages: list[dict]) -> None:
    if len(messages) == 1:
        payload = {"type": "order.update", "message": messages[0]}
    else:
        payload = {"type": "order.updates", "messages": messages}
    group = user_group(user_id)

    async def send() -> None:
        layer = get_channel_layer()
        if layer is not None:
            await layer.group_send(group, payload)

    send_from_sync(send)


# --- running the channel layer's coroutines from sync code ----------------------------
_sender_lock = threading.Lock()
_sender: tuple[int, asyncio.AbstractEventLoop] | None = None


def _sender_loop() -> asyncio.AbstractEventLoop:
    """This process's event loop for publishing, on a daemon thread (one per process: a fork
    starts its own)."""
    global _sender
    with _sender_lock:
        if _sender is None or _sender[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="order-events", daemon=True).start()
            _sender = (os.getpid(), loop)
        return _sender[1]


def _serving_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop this sync code was called from (an ASGI view, a consumer's
    database_sync_to_async), as asgiref's async_to_sync finds it."""
    if getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) != os.getpid():
        return None
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    return loop if loop is not None and loop.is_running() else None


# One lock per event loop: its sends run one at a time, in the order they were handed over.
_send_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def send_from_sync(send: Callable[[], Awaitable[None]]) -> None:
    """Run a channel-layer coroutine from sync code without waiting for it, on the loop
    run_from_sync would use. Sends handed over from one thread keep their order (the loop's
    lock is taken first come, first served); a failure is logged."""
    loop = _serving_loop() or _sender_loop()

    async def in_turn() -> None:
        lock = _send_locks.get(loop)
        if lock is None:
            lock = _send_locks[loop] = asyncio.Lock()
        async with lock:
            await send()

    future = asyncio.run_coroutine_threadsafe(in_turn(), loop)
    with _in_flight_lock:
        _in_flight.add(future)
    future.add_done_callback(_done)


_in_flight: set[concurrent.futures.Future] = set()
_in_flight_lock = threading.Lock()


def _done(future: concurrent.futures.Future) -> None:
    with _in_flight_lock:
        _in_flight.discard(future)
    if not future.cancelled() and future.exception() is not None:
        logger.error("channel-layer send failed: %r", future.exception())


@atexit.register
def wait_for_sends(timeout: float = 5) -> None:
    """Wait until what send_from_sync handed over has gone (a process that ends right after
    publishing, a test that looks at the layer)."""
    with _in_flight_lock:
        pending = list(_in_flight)
    concurrent.futures.wait(pending, timeout)


def run_from_sync(send: Callable[[], Awaitable[None]]) -> None:
    """Run a channel-layer coroutine from sync code and wait for it.

    Under an event loop, on that loop: an in-memory layer's consumers live there. Elsewhere
    (WSGI workers, Celery, commands) on the process's long-lived sender loop rather than
    async_to_sync's new thread and loop per call, which cost milliseconds per order and, with
    Redis, a new connection each time.
    """
    if _serving_loop() is not None:
        async_to_sync(send)()
        return
    asyncio.run_coroutine_threadsafe(send(), _sender_loop()).result()
