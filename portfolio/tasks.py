"""Celery tasks: thin wrappers over the portfolio services."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(acks_late=True, ignore_result=True)
def snapshot_accounts() -> int:
    return services.snapshot_accounts()


@shared_task(acks_late=True, ignore_result=True)
def sync_fills() -> int:
    return services.sync_all_fills()


@shared_task(acks_late=True, ignore_result=True)
def roll_up_snapshots() -> int:
    return services.roll_up_snapshots()
