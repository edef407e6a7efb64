from django.contrib import admin

from . import services
from .models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Operators see and revoke keys; a key is issued by its owner (the secret is theirs)."""

    list_display = ["label", "key_id", "user", "broker_account", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["label", "key_id", "user__username"]
    exclude = ["secret_digest"]
    readonly_fields = [
        "user", "broker_account", "key_id", "second_factor_verified", "created_at",
        "last_used_at", "revoked_at",
    ]  # fmt: skip
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset) -> None:
        for api_key in queryset:
            services.revoke_api_key(api_key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")
