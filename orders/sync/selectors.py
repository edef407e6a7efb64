"""Reading sync runs: a user's own, and every account's latest for the operators."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404

from accounts.models import BrokerAccount, User

from ..models import SyncRun


def sync_run_for(user: User, run_id: object) -> SyncRun:
    """One of the caller's own sync runs (404 for anyone else's or a malformed id)."""
    try:
        return SyncRun.objects.get(user=user, pk=uuid.UUID(str(run_id)))
    except (SyncRun.DoesNotExist, ValueError):
        raise Http404("No such sync.") from None


def last_sync_for(user: User) -> SyncRun | None:
    """The user's most recent finished sync (for "last synced …" on the history page)."""
    return SyncRun.objects.filter(user=user, status="done").order_by("-queued_at").first()


@dataclass
class AccountSync:
    """A broker account's last sync run (whatever its status) and its failed runs since a
    time: how many, and the latest."""

    account: BrokerAccount
    last_run: SyncRun | None
    failures: int
    last_failure: SyncRun | None


def last_syncs(accounts: QuerySet[BrokerAccount], *, failures_since: datetime) -> list[AccountSync]:
    """Each account's AccountSync in two queries however many accounts there are. A run of
    all of a user's accounts (no account of its own) counts for each of them."""
    covering = SyncRun.objects.filter(
        Q(broker_account=OuterRef("pk")) | Q(broker_account__isnull=True, user=OuterRef("user"))
    ).order_by("-queued_at")
    failed = covering.filter(status="failed", queued_at__gte=failures_since)
    rows = list(
        accounts.annotate(
            last_run_id=Subquery(covering.values("pk")[:1]),
            last_failure_id=Subquery(failed.values("pk")[:1]),
            failures=Coalesce(
                Subquery(failed.order_by().values("status").annotate(n=Count("pk")).values("n")),
                0,
            ),
        )
    )
    runs = SyncRun.objects.in_bulk(
        {run_id for row in rows for run_id in (row.last_run_id, row.last_failure_id) if run_id}
    )
    return [
        AccountSync(row, runs.get(row.last_run_id), row.failures, runs.get(row.last_failure_id))
        for row in rows
    ]
