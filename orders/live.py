"""Live order updates: follow every linked account's broker updates and apply them.

The stream process (`manage.py runstream`, or the embedded run's web process) runs
follow_order_updates: one feed for all paper accounts, one trade_updates stream per linked
Alpaca account (started and stopped as accounts are linked and unlinked). Updates go through
the sync's upsert (orders.sync.apply_order_update), so the pages and the `order` frames
show fills within a second. Each time an account's stream is up (again), a sync of that account
catches up on what it missed while down; the periodic sync remains the safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from channels.db import database_sync_to_async

from accounts.models import BrokerAccount
from accounts.services import credentials_for
from tradedesk.broker import (
    order_update_stream,
    own_order_update_stream_providers,
    paper_order_update_stream,
)
from tradedesk.broker.base import FeedStatusHandler, OrderUpdateStream
from tradedesk.broker.errors import BrokerError
from tradedesk.broker.types import OrderUpdate

from .sync import apply_order_update, catch_up, order_update_handler

log = logging.getLogger(__name__)
PAPER = "paper"


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
