from django.contrib import admin

from .models import AccountSnapshot, Fill


@admin.register(Fill)
class FillAdmin(admin.ModelAdmin):
    list_display = ("at", "broker_account", "symbol", "side", "qty", "price", "fee", "source")
    list_filter = ("source", "side")
    search_fields = ("symbol", "execution_id", "broker_order_id")
    raw_id_fields = ("order", "broker_account")
    date_hierarchy = "at"


@admin.register(AccountSnapshot)
class AccountSnapshotAdmin(admin.ModelAdmin):
    list_display = ("at", "broker_account", "kind", "equity", "cash")
    list_filter = ("kind",)
    raw_id_fields = ("broker_account",)
    date_hierarchy = "at"
