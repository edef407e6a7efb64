from django.contrib import admin

from tradedesk.admin_display import AppendOnlyAdmin, DecimalsAsWritten

from .models import AccountSnapshot, FeeCharge, Fill


@admin.register(Fill)
class FillAdmin(AppendOnlyAdmin, DecimalsAsWritten, admin.ModelAdmin):
    list_display = ("at", "broker_account", "symbol", "side", "qty", "price", "fee", "source")
    list_filter = ("source", "side")
    search_fields = ("symbol", "execution_id", "broker_order_id")
    raw_id_fields = ("order", "broker_account")
    date_hierarchy = "at"


@admin.register(AccountSnapshot)
class AccountSnapshotAdmin(AppendOnlyAdmin, DecimalsAsWritten, admin.ModelAdmin):
    list_display = ("at", "broker_account", "kind", "equity", "cash")
    list_filter = ("kind",)
    raw_id_fields = ("broker_account",)
    date_hierarchy = "at"


@admin.register(FeeCharge)
class FeeChargeAdmin(AppendOnlyAdmin, DecimalsAsWritten, admin.ModelAdmin):
    list_display = ("date", "broker_account", "activity_type", "sub_type", "amount", "attached_at")
    list_filter = ("activity_type", "sub_type")
    search_fields = ("activity_id", "symbol", "broker_order_id")
    raw_id_fields = ("broker_account",)
    date_hierarchy = "date"
