from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from orders.admin import sync_now

from .models import BrokerAccount, User
from .views import admin_login

# Operators log in through the desk's login page (its brute-force limit and second factor).
admin.site.login = admin_login


@admin.register(User)
class DeskUserAdmin(UserAdmin):
    fieldsets = [
        *UserAdmin.fieldsets,
        ("Access", {"fields": ["two_factor_required", "ip_allowlist"]}),
    ]
    list_display = [*UserAdmin.list_display, "two_factor_required"]
    list_filter = [*UserAdmin.list_filter, "two_factor_required"]


class BrokerAccountForm(forms.ModelForm):
    # Write-only: an operator may set a new secret but never sees the stored one.
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
        ]

    def clean_secret(self):
        return self.cleaned_data["secret"] or (self.instance.secret if self.instance.pk else "")


@admin.register(BrokerAccount)
class BrokerAccountAdmin(admin.ModelAdmin):
    form = BrokerAccountForm
    list_display = [
        "label",
        "user",
        "provider",
        "paper",
        "key_id_last4",
        "is_default",
        "is_active",
        "created_at",
    ]
    list_filter = ["provider", "paper", "is_active"]
    search_fields = ["label", "user__username"]
    raw_id_fields = ["user"]
    actions = [sync_now]
