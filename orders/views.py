"""Trader pages for orders and positions (thin: parsing and logic are shared with the API)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.access import second_factor_verified
from accounts.selectors import active_broker_accounts, broker_account_for
from tradedesk.broker import types
from tradedesk.broker.errors import BrokerError, BrokerUnavailable, RateLimited
from tradedesk.csv_safe import safe_row
from tradedesk.ratelimit import RateLimitExceeded
from tradedesk.symbols import parse_symbols
from tradedesk.template_filters import plain

from . import approvals, history, selectors, services, templates
from .forms import OrderFilterForm, ReplaceOrderForm
from .models import ORDER_TERMS, TEMPLATE_LEG_COLUMNS, TEMPLATE_NAME_MAX, Order
from .serializers import OrderInputSerializer, OrderTemplateBodySerializer, input_errors
from .sync.selectors import last_sync_for

TICKET_DEFAULTS = {"side": "buy", "type": "market", "time_in_force": "day", "order_class": "simple"}
# Form keys that are the page's, not the order's.
_TICKET_CONTROL_FIELDS = {"csrfmiddlewaretoken", "confirm_warnings", "template_name"}
# The templates listed beside the ticket (by name; the API lists them all).
TEMPLATES_SHOWN = 100
CSV_COLUMNS = (
    "id",
    "created_at",
    "symbol",
    "side",
    "type",
    "order_class",
    "time_in_force",
    "qty",
    "notional",
    "limit_price",
    "stop_price",
    "filled_qty",
    "filled_avg_price",
    "status",
    "client_order_id",
    "broker_order_id",
)
MAX_STATUS_IDS = 100
_BUSY = "The broker is busy; retry."


def home(request):
    if not request.user.is_authenticated:
        return redirect("login")
    account = broker_account_for(request.user, request.GET.get("broker_account"))
    context = {
        "broker_account": account,
        "recent_orders": list(
            selectors.orders_for(request.user).order_by("-created_at", "-id")[:10]
        ),
        "last_sync": last_sync_for(request.user),
    }
    try:
        context["account"], context["positions"], context["clock"] = selectors.desk_at_broker(
            account
        )
    except BrokerError as error:
        context["broker_error"] = error.message
    else:
        context["day_pl"] = context["account"].equity - context["account"].last_equity
    return render(request, "orders/home.html", context)


def _order_body(post) -> dict:
    """The ticket's form data as the API's order body (bracket legs nested, blanks dropped)."""
    body: dict = {}
    for key, value in post.items():
        if key in _TICKET_CONTROL_FIELDS or value.strip() == "":
            continue
        if "." in key:
            leg, _, name = key.partition(".")
            body.setdefault(leg, {})[name] = value.strip()
        else:
            body[key] = value.strip()
    body["extended_hours"] = "extended_hours" in post
    return body


def _rate_limited(limited: RateLimitExceeded) -> dict:
    """The desk's rate limit as a form error: what happened and when to retry."""
    return {"field": None, "code": "rate_limited", "message": limited.message}


def _field_errors(errors: list[dict]) -> dict[str, list[str]]:
    by_field: dict[str, list[str]] = {}
    for error in errors:
        key = (error.get("field") or "").replace(".", "__")
        by_field.setdefault(key, []).append(error["message"])
    return by_field


def _ticket_page(request, values: dict, *, status: int = 200, **extra):
    """The ticket filled with `values`, the user's templates beside it; `extra`: errors,
    warnings, recommendations, needs_confirmation."""
    context = {
        "accounts": active_broker_accounts(request.user),
        "sides": types.ORDER_SIDES,
        "order_types": types.ORDER_TYPES,
        "time_in_force": types.TIME_IN_FORCE,
        "order_classes": types.ORDER_CLASSES,
        "values": TICKET_DEFAULTS | values,
        "errors": [],
        "warnings": [],
        "recommendations": [],
        "templates": selectors.templates_for(request.user)[:TEMPLATES_SHOWN],
        "template_name_max": TEMPLATE_NAME_MAX,
    } | extra
    context["field_errors"] = _field_errors(context["errors"])
    return render(request, "orders/ticket.html", context, status=status)


def _form_values(data) -> dict:
    # Leg fields are named like the API's nested body ("take_profit.limit_price"); templates
    # can't look up dotted keys, hence "__".
    return {key.replace(".", "__"): value for key, value in data.items() if value}


def _template_values(template) -> dict:
    """A template as the ticket's form values (decimals as a trader writes them)."""
    values = {
        name: plain(value) if isinstance(value, Decimal) else value
        for name in ORDER_TERMS
        if (value := getattr(template, name)) not in (None, "", False)
    }
    for column, (leg, price) in TEMPLATE_LEG_COLUMNS.items():
        if getattr(template, column) is not None:
            values[f"{leg}__{price}"] = plain(getattr(template, column))
    if template.broker_account_id:
        values["broker_account"] = str(template.broker_account_id)
    return values


def _placed_or_ticket(
    request, values: dict, place: Callable[[bool], services.Placement], **context
):
    """Place (`place(confirm_warnings)`): to the new order's page, or back to the ticket
    filled with `values` (and `context`), saying why not (its warnings asked to be
    confirmed there)."""

    def ticket(status: int, **extra):
        return _ticket_page(request, values, status=status, **context, **extra)

    try:
        placement = place("confirm_warnings" in request.POST)
    except services.WarningsUnconfirmed as unconfirmed:
        verdict = unconfirmed.verdict.as_dict()
        return ticket(
            200,
            warnings=verdict["warnings"],
            recommendations=verdict["recommendations"],
            needs_confirmation=True,
        )
    except services.OrderInvalid as invalid:
        verdict = invalid.verdict.as_dict()
        return ticket(400, errors=verdict["errors"], warnings=verdict["warnings"])
    except services.IdempotencyConflict:
        conflict = {
            "field": "client_order_id",
            "code": "client_order_id_conflict",
            "message": "That client order id is already used by a different order.",
        }
        return ticket(409, errors=[conflict])
    except RateLimitExceeded as limited:
        return ticket(429, errors=[_rate_limited(limited)])
    except RateLimited:
        busy = {"field": None, "code": "rate_limited", "message": _BUSY}
        return ticket(429, errors=[busy])
    except BrokerUnavailable as error:
        down = {"field": None, "code": "broker_unavailable", "message": error.message}
        return ticket(503, errors=[down])
    except BrokerError as error:  # the stored keys: unreadable, or refused by the broker
        refused = {
            "field": None,
            "code": str(error.code or "broker_error"),
            "message": error.message,
        }
        return ticket(503, errors=[refused])
    order = placement.order
    amount = plain(order.qty) if order.qty is not None else f"${order.notional}"
    messages.success(request, f"Order {order.side} {amount} {order.symbol}: {order.status}.")
    return redirect("order-detail", order_id=order.pk)


@login_required
@require_http_methods(["GET", "POST"])
def order_ticket(request):
    if request.method == "GET":
        values = _form_values(request.GET)
        if "template" in request.GET:  # Apply: the ticket filled with one of the templates
            template = selectors.template_for(request.user, request.GET["template"])
            return _ticket_page(request, _template_values(template), applied_template=template)
        return _ticket_page(request, values)
    values = _form_values(request.POST)
    parsed = OrderInputSerializer(data=_order_body(request.POST))
    if not parsed.is_valid():
        return _ticket_page(
            request, values, status=400, errors=input_errors(parsed.errors)["errors"]
        )
    account = broker_account_for(request.user, parsed.validated_data.get("broker_account"))
    return _placed_or_ticket(
        request,
        values,
        lambda confirm_warnings: services.place_order(
            user=request.user,
            broker_account=account,
            order_input=parsed.to_order_input(),
            source="page",
            confirm_warnings=confirm_warnings,
            second_factor_verified=second_factor_verified(request),
        ),
    )


@login_required
@require_POST
def save_template(request):
    """ "Save as template": the ticket as it is, under the name given beside it."""
    values = _form_values(request.POST)
    body = _order_body(request.POST)
    body.pop("client_order_id", None)  # each placement has its own
    body["name"] = request.POST.get("template_name", "")
    parsed = OrderTemplateBodySerializer(data=body, context={"user": request.user})
    if not parsed.is_valid():
        return _ticket_page(
            request, values, status=400, errors=input_errors(parsed.errors)["errors"]
        )
    try:
        template = templates.save_template(owner=request.user, **parsed.order_fields())
    except templates.TemplateInvalid as invalid:
        return _ticket_page(request, values, status=400, errors=invalid.as_issues())
    messages.success(request, f"Template “{template.name}” saved.")
    return redirect(f"{reverse('order-ticket')}?template={template.pk}")


@login_required
@require_POST
def place_template(request, template_id: int):
    """Place: the template's order in a click; its warnings are confirmed on the ticket
    (filled with it), as the ticket's own are."""
    template = selectors.template_for(request.user, template_id)
    return _placed_or_ticket(
        request,
        _template_values(template),
        lambda confirm_warnings: templates.place_from_template(
            template,
            source="page",
            confirm_warnings=confirm_warnings,
            second_factor_verified=second_factor_verified(request),
        ),
        applied_template=template,
    )


@login_required
@require_POST
def delete_template(request, template_id: int):
    template = selectors.template_for(request.user, template_id)
    templates.delete_template(template)
    messages.success(request, f"Template “{template.name}” deleted.")
    return redirect("order-ticket")


def _detail_page(request, order, *, status: int = 200, replace_form=None, **replace):
    """The order's page; `replace` carries a refused or unconfirmed replace (its errors,
    warnings, and whether the trader is asked to confirm)."""
    return render(
        request,
        "orders/detail.html",
        {
            "order": order,
            "events": order.events.select_related("actor"),
            "replace_form": replace_form or ReplaceOrderForm(),
            "time_in_force": types.TIME_IN_FORCE,
            "replace_errors": replace.get("errors", []),
            "replace_warnings": replace.get("warnings", []),
            "replace_needs_confirmation": replace.get("needs_confirmation", False),
        },
        status=status,
    )


@login_required
@require_GET
def order_detail(request, order_id: int):
    return _detail_page(request, selectors.order_for(request.user, order_id))


@login_required
@require_GET
def order_history(request):
    form = OrderFilterForm(request.GET)
    if not form.is_valid():
        return render(request, "orders/history.html", {"form": form, "page": None}, status=400)
    try:
        page = history.order_history_page(request.user, form.filters(), form.cleaned_data["cursor"])
    except history.BadCursor as error:
        form.add_error("cursor", str(error))
        return render(request, "orders/history.html", {"form": form, "page": None}, status=400)
    query = request.GET.copy()
    query.pop("cursor", None)
    next_query = None
    if page.next_cursor:
        next_query = query.copy()
        next_query["cursor"] = page.next_cursor
    return render(
        request,
        "orders/history.html",
        {
            "form": form,
            "page": page,
            "filter_query": query.urlencode(),
            "next_query": next_query.urlencode() if next_query else None,
            "is_first_page": not form.cleaned_data["cursor"],
            "last_sync": last_sync_for(request.user),
        },
    )


class _Echo:
    def write(self, value: str) -> str:
        return value


@login_required
@require_GET
def order_history_csv(request):
    form = OrderFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest("Invalid filters.", content_type="text/plain")
    orders = history.filtered_orders(request.user, form.filters()).values_list(*CSV_COLUMNS)
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(CSV_COLUMNS)
        for row in orders.iterator(chunk_size=2000):
            yield writer.writerow(
                safe_row(
                    value.isoformat() if isinstance(value, datetime) else value for value in row
                )
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="orders.csv"'
    return response


@login_required
@require_GET
def order_statuses(request):
    """Statuses of a few of the trader's orders: the pages poll this when the stream is down."""
    try:
        ids = [int(part) for part in request.GET.get("ids", "").split(",") if part.strip()]
        if not all(0 < order_id < 2**63 for order_id in ids):  # the id column's range
            raise ValueError("out of range")
    except ValueError:
        return JsonResponse({"detail": "ids must be order ids."}, status=400)
    if len(ids) > MAX_STATUS_IDS:
        return JsonResponse({"detail": f"At most {MAX_STATUS_IDS} ids."}, status=400)
    orders = selectors.orders_for(request.user).filter(pk__in=ids)
    return JsonResponse(
        {
            "orders": [
                {
                    "id": order.pk,
                    "status": order.status,
                    "filled_qty": str(order.filled_qty),
                    "filled_avg_price": None
                    if order.filled_avg_price is None
                    else str(order.filled_avg_price),
                }
                for order in orders
            ]
        }
    )


def _back(request, order_id: int):
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect("order-detail", order_id=order_id)


@login_required
@require_POST
def cancel_order(request, order_id: int):
    order = selectors.order_for(request.user, order_id)
    if not order.is_open:
        messages.error(request, f"Order {order.pk} is {order.status}: nothing to cancel.")
        return _back(request, order.pk)
    try:
        services.cancel_order(user=request.user, order=order, source="page", actor=request.user)
    except RateLimitExceeded as limited:
        messages.error(request, f"Could not cancel order {order.pk}: {limited.message}")
    except (BrokerError, services.OrderNotModifiable) as error:
        messages.error(request, f"Could not cancel order {order.pk}: {error}")
    else:
        messages.success(request, f"Cancel requested for order {order.pk} ({order.symbol}).")
    return _back(request, order.pk)


@login_required
@require_POST
def replace_order(request, order_id: int):
    order = selectors.order_for(request.user, order_id)
    form = ReplaceOrderForm(request.POST)
    if not order.is_open:
        messages.error(request, f"Order {order.pk} is {order.status}: nothing to replace.")
        return _back(request, order.pk)

    def refused(status: int, errors: list[dict], **replace):
        return _detail_page(
            request, order, status=status, replace_form=form, errors=errors, **replace
        )

    if not form.is_valid():
        problems = [
            {
                "field": None if name == "__all__" else name,
                "code": error.code or "invalid",
                "message": " ".join(error.messages),
            }
            for name, errors in form.errors.as_data().items()
            for error in errors
        ]
        return refused(400, problems)
    try:
        replacement = services.replace_order(
            user=request.user,
            order=order,
            changes=form.replace_request(),
            source="page",
            actor=request.user,
            confirm_warnings="confirm_warnings" in request.POST,
            second_factor_verified=second_factor_verified(request),
        )
    except services.WarningsUnconfirmed as unconfirmed:
        warnings = unconfirmed.verdict.as_dict()["warnings"]
        return refused(200, [], warnings=warnings, needs_confirmation=True)
    except services.OrderInvalid as invalid:
        verdict = invalid.verdict.as_dict()
        return refused(400, verdict["errors"], warnings=verdict["warnings"])
    except services.OrderNotModifiable as error:
        return refused(422, [{"field": None, "code": error.code, "message": error.message}])
    except RateLimitExceeded as limited:
        return refused(429, [_rate_limited(limited)])
    except RateLimited:
        return refused(429, [{"field": None, "code": "broker_rate_limited", "message": _BUSY}])
    except BrokerUnavailable as error:
        return refused(
            503, [{"field": None, "code": "broker_unavailable", "message": error.message}]
        )
    except BrokerError as error:
        return refused(422, [{"field": None, "code": "broker_rejected", "message": error.message}])
    messages.success(request, f"Order {order.pk} replaced.")
    return redirect("order-detail", order_id=replacement.order.pk)


# The positions page's periods (days) as the portfolio history's.
EQUITY_PERIODS = {1: "1D", 7: "1W", 30: "1M", 90: "3M", 365: "1A"}


@login_required
@require_GET
def positions_history(request):
    try:
        days = min(max(int(request.GET.get("days", "7")), 1), 365)
    except ValueError:
        days = 7
    since = history.default_since(days)
    symbols = history.snapshot_symbols(request.user)
    symbol = request.GET.get("symbol", "").strip().upper()
    if symbol not in symbols:
        symbol = symbols[0] if symbols else ""
    try:
        bars_symbol = parse_symbols(request.GET.get("bars", "") or symbol or "AAPL", limit=1)[0]
    except ValueError:
        bars_symbol = "AAPL"

    def points(rows):
        return [
            {
                "time": int(row["snapshot_at"].timestamp()),
                "market_value": str(row["market_value"]),
                "unrealized_pl": str(row["unrealized_pl"]),
            }
            for row in rows
        ]

    return render(
        request,
        "orders/positions_history.html",
        {
            "days": days,
            "symbols": symbols,
            "symbol": symbol,
            "bars_symbol": bars_symbol,
            "bars_url": reverse("api-bars"),
            "position_points": points(history.position_series(request.user, symbol, since))
            if symbol
            else [],
            # The equity line per account comes from the portfolio's history API (its page
            # script asks for it): account equity, not summed position values.
            "equity_accounts": [
                {"id": account.pk, "label": account.label}
                for account in active_broker_accounts(request.user)
            ],
            "equity_period": EQUITY_PERIODS.get(days, "1M"),
        },
    )


def _approver(request) -> None:
    if not (request.user.is_staff and request.user.has_perm(approvals.PERMISSION)):
        raise PermissionDenied


@login_required
@require_GET
def approval_queue(request):
    """Orders waiting for a second operator: approve, or reject with a reason."""
    _approver(request)
    queue = [
        {
            "order": order,
            "notional": approvals.requested(order).get("notional"),
            "expires_at": approvals.expires_at(order),
            "own": order.user_id == request.user.pk,
        }
        for order in selectors.awaiting_approval()
    ]
    return render(
        request,
        "orders/approvals.html",
        {"queue": queue, "reason_max": approvals.REASON_MAX},
    )


def _decided(request, order_id: int, decide, verb: str) -> object:
    _approver(request)
    order = get_object_or_404(Order, pk=order_id)
    try:
        decide(order)
    except (approvals.ApprovalForbidden, approvals.NotAwaitingApproval, ValueError) as error:
        messages.error(request, f"Order {order.pk}: {getattr(error, 'message', error)}")
    except services.OrderInvalid as invalid:
        refusal = "; ".join(issue.message for issue in invalid.verdict.errors)
        messages.error(request, f"Order {order.pk} was refused at approval and rejected: {refusal}")
    except RateLimitExceeded as limited:
        messages.error(request, f"Order {order.pk}: {limited.message}")
    except BrokerError as error:
        messages.error(request, f"Order {order.pk}: the broker failed ({error}).")
    else:
        messages.success(request, f"Order {order.pk} ({order.symbol}) {verb}.")
    return redirect("approvals")


@login_required
@require_POST
def approve_order(request, order_id: int):
    return _decided(
        request,
        order_id,
        lambda order: services.approve_order(order=order, operator=request.user, source="page"),
        "approved",
    )


@login_required
@require_POST
def reject_order(request, order_id: int):
    reason = request.POST.get("reason", "")
    return _decided(
        request,
        order_id,
        lambda order: approvals.reject_order(order, request.user, reason, source="page"),
        "rejected",
    )
