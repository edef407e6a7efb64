from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.template.response import TemplateResponse

from accounts.admin import BrokerAccountAdmin
from accounts.models import BrokerAccount
from tradedesk.admin_display import AppendOnlyAdmin, DecimalsAsWritten
from tradedesk.broker import types
from tradedesk.broker.errors import BrokerError
from tradedesk.ratelimit import RateLimitExceeded

from . import approvals, halts, selectors, services
from .models import Order, OrderEvent, OrderTemplate, PositionSnapshot, SyncRun, TradingHalt
from .sync.runs import SyncQueueUnavailable, request_sync


def cancel_and_report(modeladmin, request, orders) -> None:
    """Cancel each order through the desk service (audited as the operator); report the outcome."""
    act_and_report(
        modeladmin,
        request,
        orders,
        lambda order: services.cancel_order(
            user=order.user, order=order, source="admin", actor=request.user
        ),
        refusals=(services.OrderNotModifiable, BrokerError, RateLimitExceeded),
        done="Canceled",
        refused="could not be canceled",
    )


def ask_reason(
    modeladmin,
    request,
    *,
    title: str,
    intro: str,
    items: list[tuple[int, str]],
    action_name: str,
    reason_label: str,
    reason_max: int,
    submit_label: str,
) -> TemplateResponse:
    """The intermediate page of an action that needs a reason (reject, lift): the selected
    rows again, a reason field, and the action re-posted with `apply`."""
    return TemplateResponse(
        request,
        "admin/reason_action.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": title,
            "intro": intro,
            "items": [{"pk": pk, "label": label} for pk, label in items],
            "action_name": action_name,
            "reason_label": reason_label,
            "reason_max": reason_max,
            "submit_label": submit_label,
            "missing": "apply" in request.POST,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "opts": modeladmin.model._meta,
        },
    )


_DECISION_REFUSALS = (
    approvals.ApprovalForbidden,
    approvals.NotAwaitingApproval,
    services.OrderInvalid,
    BrokerError,
    RateLimitExceeded,
)


def _refusal_text(error: Exception) -> str:
    if isinstance(error, services.OrderInvalid):
        return "refused by the gate, rejected: " + "; ".join(
            issue.message for issue in error.verdict.errors
        )
    return getattr(error, "message", str(error))


def act_and_report(modeladmin, request, orders, act, *, refusals, done: str, refused: str) -> None:
    """Do `act` to each order; a refusal is that order's outcome, reported with the rest."""
    succeeded, failures = 0, []
    for order in orders:
        try:
            act(order)
        except refusals as error:
            failures.append((order, error))
        else:
            succeeded += 1
    report(modeladmin, request, succeeded, failures, done=done, refused=refused)


def report(modeladmin, request, succeeded: int, failures, *, done: str, refused: str) -> None:
    """One action's outcome for the operator: how many succeeded, and why each other did not."""
    modeladmin.message_user(request, f"{done} {succeeded} order(s).", messages.SUCCESS)
    if failures:
        reasons = "; ".join(f"#{order.pk}: {_refusal_text(error)}" for order, error in failures)
        modeladmin.message_user(request, f"{len(failures)} {refused}: {reasons}", messages.WARNING)


class OrderEventInline(DecimalsAsWritten, admin.TabularInline):
    model = OrderEvent
    extra = 0
    can_delete = False
    fields = [
        "at",
        "event",
        "status",
        "filled_qty",
        "price",
        "qty",
        "execution_id",
        "source",
        "actor",
        "detail",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(DecimalsAsWritten, admin.ModelAdmin):
    list_display = [
        "id",
        "created_at",
        "user",
        "symbol",
        "side",
        "type",
        "qty",
        "notional",
        "filled_qty",
        "status",
        "placed_via",
        "broker_account",
    ]
    list_filter = [
        "status",
        "placed_via",
        "side",
        "type",
        "time_in_force",
        "broker_account",
        "created_at",
    ]
    search_fields = ["symbol", "client_order_id", "broker_order_id", "user__username"]
    date_hierarchy = "created_at"
    list_select_related = ["user", "broker_account"]
    inlines = [OrderEventInline]
    # The broker owns these fields: the desk mirrors them, operators don't edit them.
    readonly_fields = [f.name for f in Order._meta.fields]
    actions = ["cancel_open_orders", "sync_accounts", "approve_orders", "reject_orders"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # deleting an order would take its audit trail (its events) with it

    @admin.action(description="Approve waiting orders (four eyes: not your own)")
    def approve_orders(self, request, queryset):
        act_and_report(
            self,
            request,
            queryset,
            lambda order: services.approve_order(
                order=order, operator=request.user, source="admin"
            ),
            refusals=_DECISION_REFUSALS,
            done="Approved",
            refused="not approved",
        )

    @admin.action(description="Reject waiting orders (asks for a reason)")
    def reject_orders(self, request, queryset):
        reason = request.POST.get("reason", "").strip()
        if "apply" in request.POST and 0 < len(reason) <= approvals.REASON_MAX:
            act_and_report(
                self,
                request,
                queryset,
                lambda order: approvals.reject_order(order, request.user, reason, source="admin"),
                refusals=_DECISION_REFUSALS,
                done="Rejected",
                refused="not rejected",
            )
            return None
        return ask_reason(
            self,
            request,
            title="Reject orders waiting for approval",
            intro="The trader sees the reason with the rejected order.",
            items=[(order.pk, f"#{order.pk} {order} — {order.user}") for order in queryset],
            action_name="reject_orders",
            reason_label="Reason",
            reason_max=approvals.REASON_MAX,
            submit_label="Reject",
        )

    @admin.action(description="Cancel selected open orders", permissions=["change"])
    def cancel_open_orders(self, request, queryset):
        open_orders = queryset.exclude(status__in=types.TERMINAL_STATUSES).select_related(
            "user", "broker_account"
        )
        cancel_and_report(self, request, open_orders)

    @admin.action(description="Sync the broker accounts of the selected orders")
    def sync_accounts(self, request, queryset):
        accounts = BrokerAccount.objects.filter(
            pk__in=queryset.values("broker_account"), is_active=True
        ).select_related("user")
        queue_syncs(self, request, accounts)


@admin.register(OrderEvent)
class OrderEventAdmin(AppendOnlyAdmin, DecimalsAsWritten, admin.ModelAdmin):
    list_display = ["at", "order", "event", "status", "filled_qty", "price", "source", "actor"]
    list_filter = ["source", "event", "status", "at"]
    search_fields = ["order__symbol", "order__client_order_id", "order__broker_order_id"]
    list_select_related = ["order", "actor"]


@admin.register(PositionSnapshot)
class PositionSnapshotAdmin(AppendOnlyAdmin, DecimalsAsWritten, admin.ModelAdmin):
    list_display = [
        "snapshot_at",
        "user",
        "symbol",
        "qty",
        "side",
        "avg_entry_price",
        "current_price",
        "market_value",
        "unrealized_pl",
        "unrealized_plpc",
    ]
    list_filter = ["side", "snapshot_at"]
    search_fields = ["symbol", "user__username"]
    date_hierarchy = "snapshot_at"
    list_select_related = ["user"]


@admin.register(OrderTemplate)
class OrderTemplateAdmin(DecimalsAsWritten, admin.ModelAdmin):
    list_display = ["owner", "name", "symbol", "side", "type", "qty", "notional", "updated_at"]
    list_filter = ["side", "type"]
    search_fields = ["name", "symbol", "owner__username"]
    list_select_related = ["owner"]
    autocomplete_fields = ["owner", "broker_account"]
    readonly_fields = ["created_at", "updated_at"]


class TradingHaltForm(forms.ModelForm):
    cancel_open_orders = forms.BooleanField(
        required=False,
        label="Cancel all open orders it covers",
        help_text="Through the ordinary cancel path, audited as you.",
    )

    class Meta:
        model = TradingHalt
        fields = ["scope", "user", "broker_account", "mode", "reason"]


@admin.register(TradingHalt)
class TradingHaltAdmin(admin.ModelAdmin):
    """The kill switch: add a halt to stop trading; lift it with the action (asks why). A halt
    is never edited: its record of who halted what, when and why, and who lifted it, stays."""

    form = TradingHaltForm
    list_display = [
        "created_at",
        "scope",
        "user",
        "broker_account",
        "mode",
        "active",
        "reason",
        "created_by",
        "lifted_at",
        "lifted_by",
        "lift_reason",
    ]
    list_filter = ["active", "scope", "mode", "created_at"]
    search_fields = ["reason", "user__username", "broker_account__label"]
    list_select_related = ["user", "broker_account", "created_by", "lifted_by"]
    autocomplete_fields = ["user", "broker_account"]
    actions = ["lift_halts", "cancel_covered_orders"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return [*TradingHaltForm.Meta.fields, "cancel_open_orders"]
        return [f.name for f in TradingHalt._meta.fields if f.name != "id"]

    def has_change_permission(self, request, obj=None):
        # A halt that exists is only viewed (the lift action, on the list, changes it).
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False  # lifted, never deleted: the audit trail stays

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        target = {
            TradingHalt.SCOPE_USER: data.get("user"),
            TradingHalt.SCOPE_BROKER_ACCOUNT: data.get("broker_account"),
        }.get(data["scope"])
        result = halts.set_halt(
            scope=data["scope"],
            target=target,
            mode=data["mode"],
            reason=data["reason"],
            operator=request.user,
            cancel_open_orders=data["cancel_open_orders"],
        )
        obj.pk, obj.created_at = result.halt.pk, result.halt.created_at
        if data["cancel_open_orders"]:
            failures = [(o.order, o.error) for o in result.cancels if o.error is not None]
            report(
                self,
                request,
                len(result.cancels) - len(failures),
                failures,
                done="Canceled",
                refused="could not be canceled",
            )

    @admin.action(description="Lift the selected halts (asks why)", permissions=["change"])
    def lift_halts(self, request, queryset):
        reason = request.POST.get("reason", "").strip()
        if "apply" in request.POST and 0 < len(reason) <= halts.REASON_MAX:
            lifted, skipped = 0, 0
            for halt in queryset:
                try:
                    halts.lift_halt(halt, operator=request.user, reason=reason)
                except halts.HaltAlreadyLifted:
                    skipped += 1
                else:
                    lifted += 1
            self.message_user(request, f"Lifted {lifted} halt(s).", messages.SUCCESS)
            if skipped:
                self.message_user(
                    request, f"{skipped} were lifted before; left as they were.", messages.INFO
                )
            return None
        return ask_reason(
            self,
            request,
            title="Lift trading halts",
            intro="Trading resumes for what these halts cover; the lift is recorded with you "
            "and your reason.",
            items=[
                (halt.pk, f"{halt} — set by {halt.created_by or '—'}: {halt.reason}")
                for halt in queryset
            ],
            action_name="lift_halts",
            reason_label="Why",
            reason_max=halts.REASON_MAX,
            submit_label="Lift",
        )

    @admin.action(description="Cancel all open orders these halts cover", permissions=["change"])
    def cancel_covered_orders(self, request, queryset):
        covered: dict[int, Order] = {}
        for halt in queryset:
            covered.update((order.pk, order) for order in selectors.open_orders_under(halt))
        cancel_and_report(self, request, covered.values())


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = [
        "queued_at",
        "user",
        "broker_account",
        "trigger",
        "status",
        "created",
        "updated",
        "unchanged",
        "finished_at",
    ]
    list_filter = ["status", "trigger", "queued_at"]
    search_fields = ["user__username", "broker_account__label", "error"]
    date_hierarchy = "queued_at"
    list_select_related = ["user", "broker_account"]
    readonly_fields = [f.name for f in SyncRun._meta.fields]

    def has_add_permission(self, request):
        return False


def queue_syncs(modeladmin, request, accounts) -> None:
    """Queue one sync per broker account (a worker runs it; Sync runs show progress)."""
    queued, limited = 0, []
    for account in accounts:
        try:
            request_sync(user=account.user, broker_account=account, trigger="admin")
        except SyncQueueUnavailable:
            modeladmin.message_user(request, "The sync queue is unavailable.", messages.ERROR)
            return
        except RateLimitExceeded as error:  # the account owner's sync rate
            limited.append(f"{account}: {error.message}")
            continue
        queued += 1
    if limited:
        modeladmin.message_user(request, "Not queued: " + "; ".join(limited), messages.WARNING)
    modeladmin.message_user(request, f"Queued {queued} sync(s); see Sync runs for progress.")


@admin.action(description="Sync orders now")
def sync_now(modeladmin, request, queryset):
    """Queue one sync per selected active broker account."""
    queue_syncs(modeladmin, request, queryset.filter(is_active=True).select_related("user"))


# accounts (the ground floor) knows no orders: its broker-account admin gains the sync here.
admin.site.unregister(BrokerAccount)


@admin.register(BrokerAccount)
class SyncingBrokerAccountAdmin(BrokerAccountAdmin):
    actions = [*BrokerAccountAdmin.actions, sync_now]
