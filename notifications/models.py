"""What the desk told whom (Notification), how each user wants to hear it (NotificationPreferences)
and where webhooks go (WebhookEndpoint), with every delivery attempt (WebhookDelivery)."""

from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from accounts.encryption import EncryptedSecretField
from orders.events import NOTICE_KINDS
from orders.models import Order

# A webhook endpoint's "send test" makes a notification of its own kind.
TEST_KIND = "test"
KINDS = [*NOTICE_KINDS, TEST_KIND]
KIND_LABELS = {
    "fill": "Fills",
    "partial_fill": "Partial fills",
    "rejected": "Rejections",
    "lost": "Lost orders",
    "approval_needed": "Approvals needed",
    "approval_decided": "Approvals decided",
    "halt_on": "Halts set",
    "halt_off": "Halts lifted",
    TEST_KIND: "Tests",
}
CHANNELS = ("page", "email", "webhook")
# Defaults for a user who never chose: everything on the pages, all but partial fills by
# e-mail (when the user has an address), everything by webhook (once an endpoint exists).
DEFAULT_KINDS = {
    "page": list(NOTICE_KINDS),
    "email": [kind for kind in NOTICE_KINDS if kind != "partial_fill"],
    "webhook": list(NOTICE_KINDS),
}


def default_page_kinds() -> list[str]:
    return list(DEFAULT_KINDS["page"])


def default_email_kinds() -> list[str]:
    return list(DEFAULT_KINDS["email"])


def default_webhook_kinds() -> list[str]:
    return list(DEFAULT_KINDS["webhook"])


class NotificationPreferences(models.Model):
    """Per channel, the kinds a user hears of. No row: DEFAULT_KINDS."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences"
    )
    page = models.JSONField(default=default_page_kinds)
    email = models.JSONField(default=default_email_kinds)
    webhook = models.JSONField(default=default_webhook_kinds)

    class Meta:
        verbose_name_plural = "notification preferences"

    def __str__(self) -> str:
        return f"{self.user}'s notification preferences"

    def chosen(self) -> dict[str, list[str]]:
        """The kinds per channel."""
        return {channel: getattr(self, channel) for channel in CHANNELS}


class Notification(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=20, choices=[(k, KIND_LABELS[k]) for k in KINDS])
    order = models.ForeignKey(
        Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True, default="")
    # The notice's details, and the order as it stood when the notice was made (webhooks
    # send that, not the order as it is by the time a retry goes out).
    detail = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    order_state = models.JSONField(null=True, blank=True)
    # The channels it went to, as the user's preferences were when it was made.
    on_page = models.BooleanField(default=True)
    by_email = models.BooleanField(default=False)
    by_webhook = models.BooleanField(default=False)
    emailed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(
                fields=["user", "-created_at"],
                condition=models.Q(on_page=True),
                name="notification_page_list",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.user}: {self.title}"


class WebhookEndpoint(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField(max_length=500)
    # Shown once when made; kept encrypted (accounts.encryption) as every delivery signs with it.
    secret = EncryptedSecretField()
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One attempt to POST one notification to one endpoint."""

    RETRYING, DELIVERED, FAILED = "retrying", "delivered", "failed"
    OUTCOMES = [(RETRYING, "Will retry"), (DELIVERED, "Delivered"), (FAILED, "Failed")]

    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="deliveries"
    )
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    attempt = models.PositiveSmallIntegerField()
    at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=OUTCOMES)

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"#{self.notification_id} → {self.endpoint} (attempt {self.attempt}: {self.outcome})"
