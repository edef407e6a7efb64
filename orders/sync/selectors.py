"""Reading sync runs: the caller's own only."""

from __future__ import annotations

import uuid

from django.http import Http404

from accounts.models import User

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
