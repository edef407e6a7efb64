from django.contrib import admin

from .models import Notification, NotificationPreferences, WebhookDelivery, WebhookEndpoint


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "user",
        "kind",
        "title",
        "on_page",
        "by_email",
        "by_webhook",
        "read_at",
    ]
    list_filter = ["kind", "on_page", "by_email", "by_webhook"]
    search_fields = ["user__username", "title"]
    raw_id_fields = ["user", "order"]
    readonly_fields = [f.name for f in Notification._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(NotificationPreferences)
class NotificationPreferencesAdmin(admin.ModelAdmin):
    list_display = ["user", "page", "email", "webhook"]
    raw_id_fields = ["user"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["url", "user", "active", "created_at"]
    list_filter = ["active"]
    search_fields = ["url", "user__username"]
    # The secret is never shown again (it signs deliveries; the owner saw it once).
    fields = ["user", "url", "active", "created_at"]
    readonly_fields = ["user", "url", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False  # endpoints are made by their owner, who is shown the secret


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The audit of every attempt: read-only for everyone."""

    list_display = [
        "at",
        "endpoint",
        "notification",
        "attempt",
        "status_code",
        "outcome",
        "duration_ms",
    ]
    list_filter = ["outcome"]
    search_fields = ["endpoint__url", "endpoint__user__username"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
