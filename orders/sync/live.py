"""Live order updates: follow every linked account's broker updates and apply them.

The stream process (`manage.py runstream`, or the embedded run's web process) runs
follow_order_updates: one feed for all paper accounts, one trade_updates stream per linked
Alpaca account (started and stopped as accounts are linked and unlinked). Updates go through
the sync's upsert (`apply_order_update`), so the pages and the `order` frames
show fills within a second. Each time an account's stream is up (again), a sync of that account
catches up on what it missed while down; the periodic sync remains the safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from channels.db import database_sync_to_async
from django.db import IntegrityError, transaction

from accounts.models import BrokerAccount
from accounts.services import credentials_for
from tradedesk.broker import (
    order_update_stream,
    own_order_update_stream_providers,
    paper_order_update_stream,
    types,
)
from tradedesk.broker.base import FeedStatusHandler, OrderUpdateHandler, OrderUpdateStream
from tradedesk.broker.errors import BrokerError
from tradedesk.broker.types import OrderUpdate

from .. import events
from ..models import Order, OrderEvent
from ..record import record_event
from .lock import SyncInProgress
from .paging import sync_orders
from .upsert import SyncCounts, upsert_broker_orders

log = logging.getLogger(__name__)
PAPER = "paper"


def apply_order_update(broker_account: BrokerAccount, update: types.OrderUpdate) -> SyncCounts:
    """Apply one of the broker's trade updates to the desk's record, and audit it.

    Every event that changes the order goes through the sync's upsert (so never backwards)
    and is recorded under the broker's event name. A refused cancel or replace changes
    nothing and is recorded as such (`_record_refusal`). An execution is recorded once per
    execution id, even when the order already showed it (a sync got there first, or the
    broker delivered it twice).
    """
    if update.event in types.REFUSAL_EVENTS:
        _record_refusal(broker_account, update)
        return SyncCounts(unchanged=1)
    with transaction.atomic():
        counts = upsert_broker_orders(
            broker_account, [update.order], source="stream", updates={update.order.id: update}
        )
        if update.is_execution and update.execution_id:
            order_id = _record_execution(broker_account, update)
            if order_id is not None:
                events.announce_executions_after_commit(broker_account.pk, [order_id])
    return counts


def _stored_order(broker_account: BrokerAccount, update: types.OrderUpdate) -> Order | None:
    return Order.objects.filter(
        broker_account=broker_account, broker_order_id=update.order.id
    ).first()


def _record_execution(broker_account: BrokerAccount, update: types.OrderUpdate) -> int | None:
    """The execution's event, unless the upsert (now or at an earlier delivery) wrote it.

    Returns the order's id (None for an order the desk doesn't know).
    """
    order = _stored_order(broker_account, update)
    if order is None:
        return None
    if order.events.filter(execution_id=update.execution_id).exists():
        return order.pk
    try:
        with transaction.atomic():
            OrderEvent.objects.create(
                order=order,
                event=update.event,
                status=order.status,
                filled_qty=order.filled_qty,
                price=update.price,
                qty=update.qty,
                execution_id=update.execution_id,
                source="stream",
                # The order's record already reflected this execution: status and filled qty
                # are the order's now, not right after the execution.
                detail={"order_unchanged": True},
                at=update.timestamp,
            )
    except IntegrityError:
        pass  # a concurrent delivery recorded it
    return order.pk


def _record_refusal(broker_account: BrokerAccount, update: types.OrderUpdate) -> None:
    """A cancel or replace the broker refused: the order stays as it is; the event says why."""
    order = _stored_order(broker_account, update)
    if order is None:
        log.info(
            "broker account %s: %s for unknown order %s",
            broker_account.pk,
            update.event,
            update.order.id,
        )
        return
    detail = {"broker_status": update.order.status}
    if update.reason:
        detail["reason"] = update.reason
    # The order as it stands, as every service-recorded event (and its `order` frame).
    record_event(order, update.event, source="stream", at=update.timestamp, **detail)


def catch_up(broker_account: BrokerAccount) -> SyncCounts | None:
    """Sync what an order-update stream may have missed while it was down.

    The sync's watermark (the oldest order still open, else the newest order) reaches every
    order that can have changed since the last update the desk recorded, and orders placed
    at the broker meanwhile. None when another sync of the account is running: it covers this.
    """
    try:
        return sync_orders(broker_account)
    except SyncInProgress:
        return None


def order_update_handler(broker_account: BrokerAccount) -> OrderUpdateHandler:
    """The `on_update` for a broker's OrderUpdateStream: each update reaches the database.

    The stream process (`manage.py runstream`, or the embedded hub) runs one
    OrderUpdateStream per linked account with this handler; the periodic sync is the net.
    """
    # Closes stale database connections around each call, like a Channels consumer.
    apply = database_sync_to_async(apply_order_update)

    async def on_update(update: types.OrderUpdate) -> None:
        await apply(broker_account, update)

    return on_update


async def _log_status(state: str, detail: str) -> None:
    log.log(
        logging.INFO if state == "up" else logging.WARNING, "order updates %s: %s", state, detail
    )


def _paper_account(account_id: str) -> BrokerAccount | None:
    return (
        BrokerAccount.objects.filter(key_id=account_id, is_active=True)
        .exclude(provider__in=own_order_update_stream_providers())
        .first()
    )


def apply_paper_update(update: OrderUpdate) -> None:
    """Route one paper-exchange update to the desk account it belongs to (if any)."""
    account = _paper_account(update.account_id)
    if account is not None:
        apply_order_update(account, update)


def _catching_up(
    account: BrokerAccount, on_status: FeedStatusHandler, pending: set[asyncio.Task]
) -> FeedStatusHandler:
    """An account stream's status handler: report the state and, whenever the stream is up
    (the first time too: the stream process itself may have been down), sync the account in
    the background so live updates keep flowing meanwhile."""

    async def status(state: str, detail: str) -> None:
        await on_status(state, detail)
        if state == "up":
            task = asyncio.create_task(_catch_up(account))
            pending.add(task)
            task.add_done_callback(pending.discard)

    return status


async def _catch_up(account: BrokerAccount) -> None:
    # A background task: a failure is logged here, the periodic sync covers the gap.
    try:
        await database_sync_to_async(catch_up)(account)
    except BrokerError as failure:
        log.warning(
            "broker account %s: catching up on missed order updates failed: %s",
            account.pk,
            failure.message,
        )
    except Exception:
        log.exception("broker account %s: catching up on missed order updates failed", account.pk)


def _linked_alpaca_accounts() -> dict[int, BrokerAccount]:
    accounts = BrokerAccount.objects.filter(
        provider__in=own_order_update_stream_providers(), is_active=True
    )
    return {account.pk: account for account in accounts}


async def follow_order_updates(
    stop: asyncio.Event,
    *,
    refresh_seconds: float = 30.0,
    on_status: FeedStatusHandler = _log_status,
) -> None:
    """Run the order-update streams until `stop` is set; feed states go to `on_status`."""
    apply_paper = database_sync_to_async(apply_paper_update)
    running: dict[object, tuple[OrderUpdateStream, asyncio.Task]] = {}
    catching_up: set[asyncio.Task] = set()

    def start(key: object, stream: OrderUpdateStream) -> None:
        running[key] = (stream, asyncio.create_task(stream.run()))

    async def halt(key: object) -> None:
        stream, task = running.pop(key)
        await stream.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    start(PAPER, paper_order_update_stream(apply_paper, on_status))
    try:
        while not stop.is_set():
            wanted = await database_sync_to_async(_linked_alpaca_accounts)()
            for key in [k for k in running if k != PAPER and k not in wanted]:
                await halt(key)
            for key, account in wanted.items():
                if key not in running:
                    handler = order_update_handler(account)
                    status = _catching_up(account, on_status, catching_up)
                    start(key, order_update_stream(credentials_for(account), handler, status))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), refresh_seconds)
    finally:
        for key in list(running):
            await halt(key)
        await asyncio.gather(*catching_up, return_exceptions=True)
