"""Fixtures for the notification tests: Celery runs its tasks in-line, webhooks may call
loopback (the receivers here are threads on 127.0.0.1)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def eager_celery(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    from tradedesk.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = False
    app.conf.task_eager_propagates = False


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run a block as if its transaction committed: the notices' receivers run after it."""
    return lambda: django_capture_on_commit_callbacks(execute=True)
