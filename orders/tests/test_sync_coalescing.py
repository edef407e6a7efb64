"""Sync requests are rate limited per user, and a request for accounts whose requested sync is
still queued or running answers that run instead of queueing another."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.conf import settings

from orders import tasks
from orders.models import SyncRun
from orders.sync import runs
from tradedesk.ratelimit import RateLimitExceeded

from .test_sync_concurrency import WAIT, in_thread


@pytest.fixture
def queued(monkeypatch) -> list[str]:
    """The task queue accepts every sync and runs none (a busy worker); the queued run ids."""
    sent: list[str] = []
    lock = threading.Lock()

    def accept(args, task_id):
        with lock:
            sent.append(task_id)

    monkeypatch.setattr(tasks.run_sync, "apply_async", accept)
    return sent


@pytest.fixture
def unlimited(settings):
    settings.ORDER_COMMAND_RATES = settings.ORDER_COMMAND_RATES | {"sync": ""}


@pytest.mark.django_db
def test_a_request_while_the_accounts_sync_is_queued_gets_that_run(trader, queued, unlimited):
    account = trader.broker_accounts.get()

    first = runs.request_sync(user=trader, broker_account=account)
    again = runs.request_sync(user=trader, broker_account=account, trigger="admin")
    everything = runs.request_sync(user=trader)  # all accounts: another run

    assert again.pk == first.pk and again.trigger == "api"
    assert everything.pk != first.pk
    assert queued == [str(first.pk), str(everything.pk)]

    SyncRun.objects.filter(pk=first.pk).update(status="running")
    assert runs.request_sync(user=trader, broker_account=account).pk == first.pk
    assert len(queued) == 2


@pytest.mark.django_db
def test_once_the_run_finishes_the_next_request_queues_a_new_one(trader, queued, unlimited):
    account = trader.broker_accounts.get()
    first = runs.request_sync(user=trader, broker_account=account)

    runs.execute_sync_run(first)  # the worker gets to it

    first.refresh_from_db()
    assert (first.status, first.coalesce_key) == ("done", None)
    second = runs.request_sync(user=trader, broker_account=account)
    assert second.pk != first.pk
    assert queued == [str(first.pk), str(second.pk)]


@pytest.mark.django_db
def test_a_run_left_unfinished_past_the_task_time_limit_is_taken_as_dead(trader, queued, unlimited):
    account = trader.broker_accounts.get()
    dead = runs.request_sync(user=trader, broker_account=account)
    SyncRun.objects.filter(pk=dead.pk).update(
        status="running",
        queued_at=dead.queued_at - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 1),
    )

    fresh = runs.request_sync(user=trader, broker_account=account)

    assert fresh.pk != dead.pk
    assert SyncRun.objects.get(pk=dead.pk).coalesce_key is None


@pytest.mark.django_db
def test_sync_requests_are_rate_limited_per_user(trader, other_trader, queued, settings):
    settings.ORDER_COMMAND_RATES = settings.ORDER_COMMAND_RATES | {"sync": "3/min"}
    for _ in range(3):
        runs.request_sync(user=trader)

    with pytest.raises(RateLimitExceeded) as limited:
        runs.request_sync(user=trader)

    assert 1 <= limited.value.retry_after <= 60
    assert SyncRun.objects.filter(user=trader).count() == 1
    runs.request_sync(user=other_trader)  # another user's own budget
    assert len(queued) == 2


@pytest.mark.django_db
def test_the_api_answers_a_flood_of_sync_requests_with_one_run_then_429(api, trader, queued):
    """231 sync tasks were queued in 3 s by one user."""
    answers = [api.post("/api/v1/orders/sync/", {}, format="json") for _ in range(231)]

    accepted = [a for a in answers if a.status_code == 202]
    refused = [a for a in answers if a.status_code == 429]
    limit = int(settings.ORDER_COMMAND_RATES["sync"].split("/")[0])
    assert len(accepted) == limit and len(refused) == 231 - limit
    assert {a.json()["task_id"] for a in accepted} == {queued[0]}
    assert len(queued) == 1
    assert refused[0].json()["code"] == "rate_limited"
    assert int(refused[0]["Retry-After"]) >= 1
    assert "try again in" in refused[0].json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_simultaneous_requests_for_one_account_queue_one_run(trader, queued, unlimited):
    account = trader.broker_accounts.get()
    barrier = threading.Barrier(16)

    def request() -> str:
        barrier.wait(WAIT)
        return str(runs.request_sync(user=trader, broker_account=account).pk)

    started = [in_thread(request) for _ in range(16)]
    for thread, _ in started:
        thread.join(WAIT)

    assert [outcome.get("error") for _, outcome in started] == [None] * 16
    run_ids = [outcome["result"] for _, outcome in started]
    assert len(run_ids) == 16 and len(set(run_ids)) == 1
    assert queued == run_ids[:1]
    assert SyncRun.objects.count() == 1
