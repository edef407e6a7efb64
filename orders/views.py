"""Trader pages for orders (thin: parsing and logic are shared with the API)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.selectors import active_broker_accounts, broker_account_for
from accounts.services import broker_for
from tradedesk.broker import types
from tradedesk.broker.errors import BrokerError

from . import selectors, services
from .api import OrderInputSerializer, input_errors


def home(request):
    if not request.user.is_authenticated:
        return redirect("login")
    account = broker_account_for(request.user, request.GET.get("broker_account"))
    broker = broker_for(account)
    context = {
        "broker_account": account,
        "recent_orders": selectors.orders_for(request.user).order_by("-created_at")[:10],
    }
    try:
        context["account"] = broker.get_account()
        context["positions"] = broker.list_positions()
        context["clock"] = broker.get_clock()
    except BrokerError as error:
        context["broker_error"] = error.message
    return render(request, "orders/home.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def order_ticket(request):
    accounts = active_broker_accounts(request.user)
    context = {
        "accounts": accounts,
        "sides": types.ORDER_SIDES,
        "order_types": types.ORDER_TYPES,
        "time_in_force": types.TIME_IN_FORCE,
        "values": request.POST or {"side": "buy", "type": "market", "time_in_force": "day"},
        "errors": [],
        "warnings": [],
    }
    if request.method == "POST":
        data = {key: value for key, value in request.POST.items() if value != ""}
        parsed = OrderInputSerializer(data=data)
        if not parsed.is_valid():
            context["errors"] = input_errors(parsed.errors)["errors"]
            return render(request, "orders/ticket.html", context, status=400)
        account = broker_account_for(request.user, parsed.validated_data.get("broker_account"))
        try:
            placement = services.place_order(
                user=request.user,
                broker_account=account,
                order_input=parsed.to_order_input(),
                source="page",
            )
        except services.OrderInvalid as invalid:
            verdict = invalid.verdict.as_dict()
            context["errors"], context["warnings"] = verdict["errors"], verdict["warnings"]
            return render(request, "orders/ticket.html", context, status=400)
        except services.IdempotencyConflict:
            context["errors"] = [
                {
                    "field": "client_order_id",
                    "code": "client_order_id_conflict",
                    "message": "That client order id is already used.",
                }
            ]
            return render(request, "orders/ticket.html", context, status=409)
        order = placement.order
        messages.success(
            request,
            f"Order {order.side} {order.qty or order.notional} {order.symbol}: {order.status}.",
        )
        return redirect("order-detail", order_id=order.pk)
    return render(request, "orders/ticket.html", context)


@login_required
def order_detail(request, order_id: int):
    order = selectors.order_for(request.user, order_id)
    return render(request, "orders/detail.html", {"order": order, "events": order.events.all()})
