from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin

from . import services
from .models import BrokerAccount, User
from .views import admin_login

# Operators log in through the desk's login page (its brute-force limit and second factor).
admin.site.login = admin_login


@admin.register(User)
class DeskUserAdmin(UserAdmin):
    fieldsets = [
        *UserAdmin.fieldsets,
        ("Access", {"fields": ["two_factor_required", "ip_allowlist"]}),
        ("Approvals", {"fields": ["approval_notional"]}),
    ]
    list_display = [*UserAdmin.list_display, "two_factor_required"]
    list_filter = [*UserAdmin.list_filter, "two_factor_required"]
    actions = ["revoke_sessions"]

    @admin.action(description="Revoke sessions (log out everywhere: pages, tokens, streams)")
    def revoke_sessions(self, request, queryset):
        users = list(queryset)
        for user in users:
            services.revoke_sessions(user)
        self.message_user(
            request, f"Revoked the sessions, tokens and streams of {len(users)} user(s)."
        )


class BrokerAccountForm(forms.ModelForm):
    # Write-only: an operator may set a new secret but never sees the stored one, and sees only
    # the last 4 characters of the key id (as the API and the pages show it).
    key_id = forms.CharField(
        required=False,
        max_length=128,
        help_text="Leave empty to keep the stored key id.",
    )
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the stored secret.",
    )

    class Meta:
        model = BrokerAccount
        fields = [
            "user",
            "provider",
            "paper",
            "label",
            "key_id",
            "secret",
            "is_default",
            "is_active",
            "approval_notional",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["key_id"] = ""

    def clean_key_id(self):
        key_id = self.cleaned_data["key_id"] or (self.instance.key_id if self.instance.pk else "")
        if not key_id:
            raise forms.ValidationError("Give the key id.")
        return key_id

    def clean_secret(self):
        return self.cleaned_data["secret"] or (self.instance.secret if self.instance.pk else "")

    def clean(self):
        """New keys are checked as the link service checks them (the provider's format)."""
        cleaned = super().clean()
        if cleaned.get("provider"):
            try:
                services.validate_broker_keys(
                    provider=cleaned["provider"],
                    key_id=self.data.get("key_id") or None,
                    secret=self.data.get("secret") or None,
                )
            except services.LinkError as error:
                self.add_error(error.field, error.message)
        return cleaned


@admin.register(BrokerAccount)
class BrokerAccountAdmin(admin.ModelAdmin):
    form = BrokerAccountForm
    list_display = [
        "label",
        "user",
        "provider",
        "paper",
        "key_id_last4",
        "credentials",
        "is_default",
        "is_active",
        "created_at",
    ]
    list_filter = ["provider", "paper", "is_active"]
    search_fields = ["label", "user__username"]
    raw_id_fields = ["user"]
    readonly_fields = ["key_id_last4", "credentials"]

    @admin.display(description="Key id (last 4)")
    def key_id_last4(self, account: BrokerAccount) -> str:
        return account.key_id_last4

    @admin.display(description="Stored secret")
    def credentials(self, account: BrokerAccount) -> str:
        if account.secret_readable:
            return "readable"
        return "unreadable (broker_credentials_unreadable): set it again or restore the old key"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        account = self.get_object(request, object_id)
        if account is not None and not account.secret_readable:
            messages.error(
                request,
                "This account's stored secret cannot be decrypted with FIELD_ENCRYPTION_KEY "
                "(broker_credentials_unreadable): nothing is sent to the broker until a new "
                "secret is set here or the old key is restored.",
            )
        return super().change_view(request, object_id, form_url, extra_context)
