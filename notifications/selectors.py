"""Reads of a user's notifications, preferences and webhook endpoints."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from accounts.models import User

from .models import Notification, WebhookDelivery, WebhookEndpoint

DELIVERIES_SHOWN = 20


def page_notifications(user: User) -> QuerySet[Notification]:
    """The user's notifications for the pages, newest first."""
    return Notification.objects.filter(user=user, on_page=True).order_by("-created_at", "-pk")


def unread_count(user: User) -> int:
    return page_notifications(user).filter(read_at__isnull=True).count()


def notification_for(user: User, pk: object) -> Notification:
    """One of the user's own (404 for anyone else's, or a junk id)."""
    try:
        return page_notifications(user).get(pk=int(str(pk)))
    except (Notification.DoesNotExist, ValueError, OverflowError):
        raise Http404("No such notification.") from None


def endpoints_for(user: User) -> list[WebhookEndpoint]:
    """The user's endpoints, each with its latest deliveries (`recent`), newest first."""
    endpoints = list(WebhookEndpoint.objects.filter(user=user))
    for endpoint in endpoints:
        endpoint.recent = list(deliveries_for(endpoint)[:DELIVERIES_SHOWN])
    return endpoints


def endpoint_for(user: User, pk: object) -> WebhookEndpoint:
    """One of the user's own endpoints (404 for anyone else's)."""
    try:
        return WebhookEndpoint.objects.get(user=user, pk=int(str(pk)))
    except (WebhookEndpoint.DoesNotExist, ValueError, OverflowError):
        raise Http404("No such webhook endpoint.") from None


def deliveries_for(endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    return endpoint.deliveries.select_related("notification").order_by("-at", "-pk")
