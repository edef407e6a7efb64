"""Webhooks: signed (HMAC-SHA256, timestamped), retried with growing backoff by Celery after a
failure, every attempt logged and shown to the user; URLs into the desk's network refused."""

from __future__ import annotations

import time

import pytest
import requests
from django.core.exceptions import ValidationError
from django.db import connection

from notifications import services
from notifications.models import Notification, WebhookDelivery, WebhookEndpoint
from notifications.signing import sign, verify_signature

from .conftest import market_buy
from .receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_waiting(monkeypatch):
    """Each retry's countdown, as scheduled (eager Celery runs the retry at once)."""
    from notifications import tasks

    countdowns = []
    schedule = tasks.deliver_webhook.apply_async

    def recorded(args, kwargs, countdown=None, **options):
        if countdown is not None:
            countdowns.append(countdown)
        return schedule(args, kwargs, **options)

    monkeypatch.setattr(tasks.deliver_webhook, "apply_async", recorded)
    return countdowns


def test_a_fill_is_posted_signed_retried_after_a_500_and_logged(trader, committed, no_waiting):
    with Receiver(answers=(500, 200)) as receiver:
        made = services.add_endpoint(trader, receiver.url)
        receiver.secret = made.secret
        with committed():
            order = market_buy(trader)

    assert receiver.refused == []
    first, second = receiver.received
    note = Notification.objects.get(kind="fill")
    assert first["body"] == second["body"]  # the same notification, retried
    body = first["body"]
    assert (body["id"], body["kind"], body["order"]["id"]) == (note.pk, "fill", order.pk)
    assert body["order"]["filled_qty"] == "2" and body["order"]["status"] == "filled"
    assert first["delivery"] != second["delivery"]  # each attempt its own id

    attempts = list(WebhookDelivery.objects.order_by("attempt"))
    assert [(a.attempt, a.status_code, a.outcome) for a in attempts] == [
        (1, 500, "retrying"),
        (2, 200, "delivered"),
    ]
    assert [str(a.pk) for a in attempts] == [first["delivery"], second["delivery"]]
    assert attempts[0].response_excerpt == "try again" and attempts[0].next_attempt_at
    assert 2 <= no_waiting[0] <= 3


def test_backoff_grows_until_the_attempts_are_used_up(trader, settings, no_waiting, committed):
    settings.WEBHOOK_MAX_ATTEMPTS = 5
    with Receiver(answers=(503,)) as receiver:
        made = services.add_endpoint(trader, receiver.url)
        receiver.secret = made.secret
        with committed():
            services.send_test(made.endpoint)

    attempts = list(WebhookDelivery.objects.order_by("attempt"))
    assert [a.outcome for a in attempts] == ["retrying"] * 4 + ["failed"]
    assert len(receiver.received) == 5
    # 2**n seconds and up to half again of jitter: each wait longer than the last.
    assert len(no_waiting) == 4
    for n, countdown in enumerate(no_waiting, start=1):
        assert 2**n - 0.5 <= countdown <= 1.5 * 2**n
    assert no_waiting == sorted(no_waiting)


def test_retry_countdowns_double_with_bounded_jitter():
    for attempt in range(1, 7):
        waits = [services.retry_countdown(attempt) for _ in range(50)]
        assert all(2**attempt <= w <= 1.5 * 2**attempt for w in waits)
        assert len(set(waits)) > 1  # jittered


def test_an_unreachable_endpoint_is_logged_with_its_error(trader, settings, no_waiting):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    with Receiver() as receiver:
        url = receiver.url
    endpoint = services.add_endpoint(trader, url).endpoint  # nobody listens there any more
    note = services.send_test(endpoint)
    from notifications import tasks

    tasks.deliver_webhook(note.pk, endpoint.pk, attempt=1)
    attempts = list(WebhookDelivery.objects.order_by("attempt"))
    assert [(a.status_code, a.outcome) for a in attempts] == [(None, "retrying"), (None, "failed")]
    assert "Connection" in attempts[0].error


def test_the_signature_verifies_only_the_same_body_secret_and_a_recent_time():
    body = b'{"id":1}'
    now = int(time.time())
    header = sign("whsec_x", body, now)
    assert header.startswith(f"t={now},v1=")
    assert verify_signature("whsec_x", header, body)
    assert not verify_signature("whsec_x", header, b'{"id":2}')
    assert not verify_signature("whsec_y", header, body)
    assert not verify_signature("whsec_x", sign("whsec_x", body, now - 301), body)
    assert verify_signature("whsec_x", f"t={now},v1=0000,{header.split(',')[1]}", body)
    for junk in ("", "t=abc,v1=00", f"t={now}", "v1=00"):
        assert not verify_signature("whsec_x", junk, body)


def test_the_secret_is_shown_once_and_stored_encrypted(trader):
    made = services.add_endpoint(trader, "https://hooks.example.com/desk")
    assert made.secret.startswith("whsec_") and len(made.secret) > 40
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM notifications_webhookendpoint")
        [(stored,)] = cursor.fetchall()
    assert made.secret not in stored
    assert WebhookEndpoint.objects.get().secret == made.secret


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_addresses_inside_the_network_are_refused(trader, settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    with pytest.raises(ValidationError):
        services.add_endpoint(trader, url)
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "javascript:alert(1)", "http://user:pw@example.com/", "x" * 600]
)
def test_malformed_urls_are_refused(trader, url):
    with pytest.raises(ValidationError):
        services.add_endpoint(trader, url)


def test_a_name_that_now_resolves_inside_is_not_called(trader, settings, monkeypatch):
    endpoint = services.add_endpoint(trader, "http://127.0.0.1:9/hook").endpoint
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    called = []
    monkeypatch.setattr(requests, "post", lambda *a, **k: called.append(a))
    note = services.send_test(endpoint)
    delivery = services.attempt_webhook(note, endpoint, 1)
    assert called == []
    assert "loopback, private or reserved" in delivery.error


def test_an_endpoint_deleted_before_its_retry_ends_the_retries(trader):
    from notifications import tasks

    endpoint = services.add_endpoint(trader, "https://hooks.example.com/x").endpoint
    note = services.send_test(endpoint)
    endpoint.delete()
    assert tasks.deliver_webhook(note.pk, endpoint.pk, attempt=3) == "gone"
    assert not WebhookDelivery.objects.exists()
