"""Admin: deliveries are an audit trail (no add, change or delete, superusers too); endpoints
never show their secret."""

from __future__ import annotations

import pytest
from django.utils import timezone

from notifications import services
from notifications.models import Notification, WebhookDelivery

pytestmark = pytest.mark.django_db


@pytest.fixture
def delivery(trader):
    endpoint = services.add_endpoint(trader, "https://hooks.example.com/x").endpoint
    note = Notification.objects.create(user=trader, kind="fill", title="Filled")
    return WebhookDelivery.objects.create(
        notification=note, endpoint=endpoint, attempt=1, at=timezone.now(), status_code=500,
        outcome="retrying",
    )  # fmt: skip


def test_deliveries_are_read_only_for_superusers_too(admin_client, delivery):
    base = "/admin/notifications/webhookdelivery/"
    assert admin_client.get(base).status_code == 200
    assert admin_client.get(f"{base}{delivery.pk}/change/").status_code == 200  # viewable
    assert admin_client.get(f"{base}add/").status_code == 403
    assert admin_client.post(f"{base}{delivery.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.post(f"{base}{delivery.pk}/change/", {"attempt": 9}).status_code == 403
    delivery.refresh_from_db()
    assert delivery.attempt == 1


def test_an_endpoint_page_never_shows_its_secret(admin_client, delivery):
    endpoint = delivery.endpoint
    page = admin_client.get(f"/admin/notifications/webhookendpoint/{endpoint.pk}/change/")
    assert page.status_code == 200
    assert endpoint.secret not in page.content.decode()
