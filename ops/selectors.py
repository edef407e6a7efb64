"""What operators read of the running desk: the overview page's state, the market-data hub's
report and the Celery queues (the last two also for /metrics)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import current_app
from kombu.exceptions import ChannelError

from accounts.models import BrokerAccount
from market.stream.hub import feed_status
from orders import selectors
from orders.models import Order, TradingHalt
from orders.sync.selectors import AccountSync, last_syncs

# How far back the overview looks for lost orders and failed syncs, and how many it lists.
RECENT = timedelta(hours=24)
RECENT_ROWS = 10
ABSENT = "absent"  # no hub reports: none runs (production), or none started yet (embedded)


@dataclass
class DeskOverview:
    halts: list[TradingHalt]
    approvals: selectors.ApprovalQueue
    lost: list[Order]
    lost_count: int
    pending: list[Order]
    pending_count: int
    syncs: list[AccountSync]
    upstream: dict


def desk_overview(now: datetime) -> DeskOverview:
    """The desk at a glance, in a fixed number of queries however many accounts it has."""
    since = now - RECENT
    lost = selectors.lost_orders(since)
    pending = selectors.unconfirmed_orders().select_related("user")
    accounts = (
        BrokerAccount.objects.filter(is_active=True)
        .select_related("user")
        .order_by("user__username", "label", "pk")
    )
    return DeskOverview(
        halts=list(selectors.active_halts()),
        approvals=selectors.approval_queue_summary(),
        lost=list(lost[:RECENT_ROWS]),
        lost_count=lost.count(),
        pending=list(pending[:RECENT_ROWS]),
        pending_count=pending.count(),
        syncs=last_syncs(accounts, failures_since=since),
        upstream=upstream_state(),
    )


def upstream_state() -> dict:
    """The market-data hub's last report {state, detail, at, reconnects}; state `absent`
    when no hub reports."""
    status = feed_status()
    if status is None:
        return {
            "state": ABSENT,
            "detail": "no market-data hub reports (production: run manage.py runstream; "
            "the embedded run starts it with the first stream connection)",
            "at": None,
            "reconnects": 0,
        }
    return {"reconnects": 0, **status, "at": datetime.fromisoformat(status["at"])}


def celery_queue_depths() -> dict[str, int]:
    """Messages waiting in each of Celery's queues, as its broker counts them (Redis: LLEN of
    the queue's lists; the embedded filesystem broker: its message files)."""
    app = current_app
    depths = {}
    with app.connection_for_read() as connection:
        connection.ensure_connection(max_retries=1)
        channel = connection.default_channel
        for name in app.amqp.queues:
            try:
                depths[name] = channel.queue_declare(queue=name, passive=True).message_count
            except ChannelError:  # never declared: nothing was ever sent to it
                depths[name] = 0
    return depths
