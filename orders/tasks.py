"""Celery tasks: thin wrappers over the sync, snapshot and approval services."""

from __future__ import annotations

from celery import shared_task

from accounts.models import BrokerAccount
from tradedesk import broker
from tradedesk.broker.errors import BrokerUnavailable, RateLimited

from . import approvals
from .models import SyncRun
from .sync import paging, runs, snapshots

# Idempotent tasks: redelivery after a worker dies (acks_late) just syncs again.
_RETRYING = {
    "acks_late": True,
    "autoretry_for": (BrokerUnavailable, RateLimited),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(acks_late=True, ignore_result=True)
def sync_all_accounts() -> int:
    """Fan out: one sync task per active broker account. Returns how many were queued."""
    account_ids = list(BrokerAccount.objects.filter(is_active=True).values_list("pk", flat=True))
    for account_id in account_ids:
        sync_account.delay(account_id)
    return len(account_ids)


@shared_task(bind=True, **_RETRYING)
def sync_account(self, broker_account_id: int) -> dict:
    """Sync one account; its SyncRun has the task's id, so a retry continues the same run."""
    account = BrokerAccount.objects.select_related("user").get(pk=broker_account_id)
    run, _ = SyncRun.objects.get_or_create(
        pk=self.request.id,
        defaults={"user": account.user, "broker_account": account, "trigger": "schedule"},
    )
    return _result(runs.execute_sync_run(run))


@shared_task(**_RETRYING)
def run_sync(run_id: str) -> dict:
    """Execute a sync someone asked for (the API, admin): the SyncRun already exists."""
    return _result(runs.execute_sync_run(SyncRun.objects.get(pk=run_id)))


@shared_task(acks_late=True)
def snapshot_positions() -> int:
    return snapshots.snapshot_positions()


@shared_task(acks_late=True, ignore_result=True, expires=10)
def match_paper_orders() -> int:
    """Match the paper exchange's resting orders in every account that has some, so they
    fill as the simulated market moves even when no one is looking at the account."""
    return broker.periodic_work()


def _result(run: SyncRun) -> dict:
    return {
        "status": run.status,
        "created": run.created,
        "updated": run.updated,
        "unchanged": run.unchanged,
    }


@shared_task(acks_late=True, ignore_result=True, expires=50)
def reconcile_pending_orders() -> int:
    """Settle orders whose broker answer never came (found by client_order_id, or lost)."""
    return paging.reconcile_all_unconfirmed()


@shared_task(acks_late=True, ignore_result=True, expires=50)
def expire_overdue_approvals() -> int:
    """End orders whose approval timed out (`expired`, event approval_expired)."""
    return approvals.expire_overdue()
