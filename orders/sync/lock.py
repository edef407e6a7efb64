"""One sync at a time per broker account: a Redis lock when configured, else a database lease."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from accounts.models import BrokerAccount

from ..models import OrderSyncLease


class SyncInProgress(Exception):
    """Another sync of this broker account holds its lock."""


@contextmanager
def account_sync_lock(broker_account: BrokerAccount) -> Iterator[Callable[[], None]]:
    """Hold the account's sync lock (Redis when configured, else a database lease).

    Yields a function that renews the lock; raises SyncInProgress if another sync holds it.
    The lock expires after the task time limit, so a killed worker can't block the account.
    """
    ttl = settings.CELERY_TASK_TIME_LIMIT
    with _lock_for(broker_account, ttl) as renew:
        renewed_at = time.monotonic()

        def renew_now_and_then() -> None:
            nonlocal renewed_at
            if time.monotonic() - renewed_at > ttl / 3:  # renewing every batch costs a commit
                renew()
                renewed_at = time.monotonic()

        yield renew_now_and_then


@contextmanager
def _lock_for(broker_account: BrokerAccount, ttl: int) -> Iterator[Callable[[], None]]:
    if settings.REDIS_URL:
        from redis.exceptions import LockError

        lock = _redis().lock(f"tradedesk:order-sync:{broker_account.pk}", timeout=ttl)
        if not lock.acquire(blocking=False):
            raise SyncInProgress(f"broker account {broker_account.pk} is being synced")

        def renew() -> None:
            try:
                lock.reacquire()
            except LockError as lost:  # expired or deleted: another sync may have started
                raise SyncInProgress(f"lost the sync lock of account {broker_account.pk}") from lost

        try:
            yield renew
        finally:
            with suppress(LockError):  # expired meanwhile: nothing left to release
                lock.release()
        return

    holder = uuid.uuid4().hex
    if not _take_lease(broker_account, holder, ttl):
        raise SyncInProgress(f"broker account {broker_account.pk} is being synced")
    try:
        yield lambda: _extend_lease(broker_account, holder, ttl)
    finally:
        OrderSyncLease.objects.filter(broker_account=broker_account, holder=holder).update(
            holder="", expires_at=timezone.now()
        )


@functools.cache
def _redis():
    import redis

    return redis.Redis.from_url(settings.REDIS_URL)


def _take_lease(broker_account: BrokerAccount, holder: str, ttl: int) -> bool:
    now = timezone.now()
    OrderSyncLease.objects.bulk_create(
        [OrderSyncLease(broker_account=broker_account, expires_at=now)], ignore_conflicts=True
    )
    # One conditional UPDATE: of two concurrent takers, the second finds the holder set.
    taken = (
        OrderSyncLease.objects.filter(broker_account=broker_account)
        .filter(Q(holder="") | Q(expires_at__lte=now))
        .update(holder=holder, expires_at=now + timedelta(seconds=ttl))
    )
    return taken == 1


def _extend_lease(broker_account: BrokerAccount, holder: str, ttl: int) -> None:
    OrderSyncLease.objects.filter(broker_account=broker_account, holder=holder).update(
        expires_at=timezone.now() + timedelta(seconds=ttl)
    )
