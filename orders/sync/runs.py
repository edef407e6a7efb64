"""Sync runs: a requested or scheduled sync queued for a worker, and its progress record."""

from __future__ import annotations

from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import BrokerAccount, User
from accounts.selectors import active_broker_accounts
from tradedesk.broker.errors import BrokerError

from .. import throttles
from ..metrics import record_sync_run
from ..models import SyncRun
from .lock import SyncInProgress
from .paging import sync_orders
from .upsert import SyncCounts

# Queued by name: the tasks module (thin) calls into this one, never the other way round.
RUN_SYNC_TASK = "orders.tasks.run_sync"


def execute_sync_run(run: SyncRun) -> SyncRun:
    """Sync the run's account (or every active account of its user), recording progress.

    A broker error marks the run failed and propagates (the task retries it); another sync
    of the same account running marks it skipped: that sync covers it.
    """
    accounts = (
        [run.broker_account] if run.broker_account_id else list(active_broker_accounts(run.user))
    )
    _save_run(run, status="running", started_at=timezone.now(), finished_at=None, error="")
    totals = SyncCounts()
    try:
        for account in accounts:
            done_before = totals

            def progress(counts: SyncCounts, base: SyncCounts = done_before) -> None:
                _save_run(run, **_count_fields(base + counts))

            totals += sync_orders(account, on_batch=progress)
    except SyncInProgress as busy:
        _save_run(run, status="skipped", error=str(busy), finished_at=timezone.now())
        return run
    except BrokerError as failure:
        _save_run(run, status="failed", error=failure.message, finished_at=timezone.now())
        raise
    except Exception as failure:
        _save_run(run, status="failed", error=repr(failure), finished_at=timezone.now())
        raise
    _save_run(run, status="done", finished_at=timezone.now(), **_count_fields(totals))
    return run


def _count_fields(counts: SyncCounts) -> dict[str, int]:
    return {"created": counts.created, "updated": counts.updated, "unchanged": counts.unchanged}


_FINISHED = frozenset({"done", "skipped", "failed"})


def _save_run(run: SyncRun, **values) -> None:
    finished = values.get("status") in _FINISHED
    if finished:
        values["coalesce_key"] = None  # the next request queues a new run
    for name, value in values.items():
        setattr(run, name, value)
    SyncRun.objects.filter(pk=run.pk).update(**values)
    if finished:
        record_sync_run(run)


class SyncQueueUnavailable(Exception):
    """The task queue refused the sync (its broker is down)."""


def request_sync(
    *, user: User, broker_account: BrokerAccount | None = None, trigger: str = "api"
) -> SyncRun:
    """Record a queued sync and hand it to a worker; the run's id is the task's id.

    Counted against the user's sync rate (raises ratelimit.RateLimitExceeded). A request for
    accounts whose requested sync is still queued or running gets that run back instead of
    queueing another (a run unfinished after the task time limit is taken as dead).
    """
    from kombu.exceptions import OperationalError

    throttles.limit(user, "sync")
    run, created = _queued_run(user, broker_account, trigger)
    if not created:
        return run
    try:
        current_app.tasks[RUN_SYNC_TASK].apply_async((str(run.pk),), task_id=str(run.pk))
    except OperationalError as failure:
        _save_run(run, status="failed", error="task queue unavailable", finished_at=timezone.now())
        raise SyncQueueUnavailable(str(failure)) from failure
    run.refresh_from_db()
    return run


def _queued_run(
    user: User, broker_account: BrokerAccount | None, trigger: str
) -> tuple[SyncRun, bool]:
    """The unfinished requested run for these accounts, or a new queued one (True)."""
    key = f"{user.pk}:{broker_account.pk if broker_account else 'all'}"
    dead_before = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    SyncRun.objects.filter(coalesce_key=key, queued_at__lt=dead_before).update(coalesce_key=None)
    while True:
        try:
            with transaction.atomic():
                run = SyncRun.objects.create(
                    user=user, broker_account=broker_account, trigger=trigger, coalesce_key=key
                )
            return run, True
        except IntegrityError:
            existing = SyncRun.objects.filter(coalesce_key=key).first()
            if existing is not None:
                return existing, False
            # It finished between the insert and the read: queue a new one.
