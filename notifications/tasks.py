"""Celery tasks: thin wrappers over the notification services (e-mail and webhook sending)."""

from __future__ import annotations

import smtplib

from celery import shared_task
from django.utils import timezone

from . import services
from .models import Notification, WebhookDelivery, WebhookEndpoint


@shared_task(acks_late=True, ignore_result=True)
def deliver_notices_later(notices: list[dict]) -> None:
    """A sync batch's notices, delivered off the sync's thread."""
    services.deliver_later(notices)


@shared_task(acks_late=True, ignore_result=True)
def dispatch_notifications(notification_ids: list[int]) -> None:
    """Fan out a batch's notifications: one task per e-mail and per webhook delivery."""
    services.dispatch(notification_ids)


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
)
def send_notification_email(notification_id: int) -> bool:
    notification = Notification.objects.select_related("user").get(pk=notification_id)
    return services.send_email(notification)


@shared_task(acks_late=True, ignore_result=True)
def deliver_webhook(notification_id: int, endpoint_id: int, attempt: int = 1) -> str:
    """One attempt; a failed one schedules the next after its backoff (WebhookDelivery
    records each, with next_attempt_at)."""
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id).first()
    notification = Notification.objects.filter(pk=notification_id).first()
    if endpoint is None or notification is None:
        return "gone"  # deleted by its owner meanwhile: nothing to deliver, nowhere to log
    delivery = services.attempt_webhook(notification, endpoint, attempt)
    if delivery.outcome == WebhookDelivery.RETRYING:
        countdown = max(0.0, (delivery.next_attempt_at - timezone.now()).total_seconds())
        deliver_webhook.apply_async(
            (notification_id, endpoint_id), {"attempt": attempt + 1}, countdown=countdown
        )
    return delivery.outcome
