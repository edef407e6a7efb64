"""Paging through an account's orders at the broker, from the account's watermark."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max, Min, Q
from django.db.models.functions import Coalesce

from accounts.models import BrokerAccount
from accounts.services import broker_for
from tradedesk.broker import Broker, types
from tradedesk.broker.errors import BrokerError

from .. import selectors
from ..models import Order
from ..services import reconcile_pending
from .lock import account_sync_lock
from .upsert import SyncCounts, upsert_broker_orders

logger = logging.getLogger(__name__)

# Alpaca's largest page.
PAGE_LIMIT = 500
# Timestamps reach the desk truncated to microseconds (Alpaca's carry nanoseconds): the next
# page starts one microsecond before the newest order seen, so orders sharing the page's last
# timestamp are fetched again rather than skipped; ids already seen are dropped.
_OVERLAP = timedelta(microseconds=1)


def sync_orders(
    broker_account: BrokerAccount,
    *,
    since: datetime | None = None,
    broker: Broker | None = None,
    on_batch: Callable[[SyncCounts], None] | None = None,
) -> SyncCounts:
    """Page through the account's orders at the broker (oldest first) and upsert them in
    batches of at least ORDER_SYNC_BATCH_SIZE orders (whole pages).

    Starts at `since`, else at the account's watermark (see `sync_watermark`). Each batch is
    committed on its own, so a sync killed midway keeps what it wrote and the next one resumes
    from the watermark. Then the orders still unconfirmed (the watermark never sees them) are
    looked up by client_order_id (`reconcile_unconfirmed`). Raises SyncInProgress when another
    sync of the account is running.
    """
    broker = broker or broker_for(broker_account)
    with account_sync_lock(broker_account) as renew_lock:
        cursor = since if since is not None else sync_watermark(broker_account)
        counts = SyncCounts()
        recent: dict[str, datetime] = {}  # ids seen at or after the cursor: they may come again
        batch: list[types.BrokerOrder] = []

        def flush() -> None:
            nonlocal counts
            if batch:
                counts += upsert_broker_orders(broker_account, batch, source="sync")
                batch.clear()
                renew_lock()
                if on_batch is not None:
                    on_batch(counts)

        while True:
            page = broker.list_orders(status="all", after=cursor, direction="asc", limit=PAGE_LIMIT)
            fresh = [order for order in page if order.id not in recent]
            if not fresh:
                if len(page) >= PAGE_LIMIT:
                    logger.warning(
                        "broker account %s: a whole page of orders shares one timestamp; "
                        "orders after it are unreachable by time paging",
                        broker_account.pk,
                    )
                break
            batch.extend(fresh)
            if len(batch) >= settings.ORDER_SYNC_BATCH_SIZE:
                flush()
            if len(page) < PAGE_LIMIT:
                break
            cursor = max(_submitted_at(order) for order in page) - _OVERLAP
            recent = {
                order_id: at
                for order_id, at in [*recent.items(), *((o.id, _submitted_at(o)) for o in page)]
                if at >= cursor
            }
        flush()
        reconcile_unconfirmed(broker_account, broker=broker)
    return counts


def reconcile_unconfirmed(broker_account: BrokerAccount, *, broker: Broker | None = None) -> int:
    """Settle the account's unconfirmed orders (`services.reconcile_pending`, one look-up by
    client_order_id each): confirmed by the broker, or lost once overdue. Returns how many
    were settled; the rest are still young enough for the broker's answer to come."""
    broker = broker or broker_for(broker_account)
    settled = 0
    for order in selectors.unconfirmed_orders(broker_account):
        settled += not reconcile_pending(order, broker=broker).is_unconfirmed
    return settled


def reconcile_all_unconfirmed() -> int:
    """`reconcile_unconfirmed` for every account that has such orders (the beat's task).

    A broker that fails one account's look-ups is logged and the next account goes on: the
    next run (or the account's sync) tries again.
    """
    settled = 0
    for broker_account in BrokerAccount.objects.filter(
        pk__in=selectors.unconfirmed_orders().values("broker_account")
    ):
        try:
            settled += reconcile_unconfirmed(broker_account)
        except BrokerError as failure:
            logger.warning(
                "broker account %s: pending orders not reconciled: %s",
                broker_account.pk,
                failure.message,
            )
    return settled


def sync_watermark(broker_account: BrokerAccount) -> datetime | None:
    """Where the next sync starts: the oldest order still open, else the newest order synced.

    Derived from committed rows, so it only ever advances with a committed batch. A leg is
    listed inside its parent, so an open leg holds the watermark at its parent's submission.
    """
    submitted = Coalesce("parent__submitted_at", "submitted_at")
    marks = (
        Order.objects.filter(broker_account=broker_account)
        .exclude(broker_order_id="")
        .aggregate(
            oldest_open=Min(submitted, filter=~Q(status__in=types.TERMINAL_STATUSES)),
            newest=Max(submitted),
        )
    )
    mark = marks["oldest_open"] or marks["newest"]
    return None if mark is None else mark - _OVERLAP


def _submitted_at(order: types.BrokerOrder) -> datetime:
    return order.submitted_at or order.created_at
