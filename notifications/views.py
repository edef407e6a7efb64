"""/accounts/notifications/: the user's notifications, preferences and webhook endpoints (thin)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from . import selectors, services
from .forms import EndpointForm, PreferencesForm
from .models import CHANNELS

PAGE_SIZE = 25
NEW_SECRET_SESSION_KEY = "notifications.new_webhook_secret"


@login_required
@require_http_methods(["GET", "POST"])
def notifications_page(request):
    """The list, the preferences form (POST here saves it) and the webhook endpoints."""
    form = _preferences_form(request, request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            services.save_preferences(request.user, form.chosen())
            messages.success(request, "Notification preferences saved.")
            return redirect("notifications-page")
        return _render(request, preferences_form=form, status=400)
    return _render(request, preferences_form=form)


def _preferences_form(request, data=None) -> PreferencesForm:
    return PreferencesForm(data, initial_kinds=services.preferences_of(request.user).chosen())


def _render(request, *, preferences_form=None, endpoint_form=None, status=200):
    listing = Paginator(selectors.page_notifications(request.user), PAGE_SIZE)
    # The secret of an endpoint just made, shown on this one GET after the POST's redirect.
    new_secret = (
        request.session.pop(NEW_SECRET_SESSION_KEY, None) if request.method == "GET" else None
    )
    return render(
        request,
        "notifications/notifications.html",
        {
            "page_obj": listing.get_page(request.GET.get("page")),
            "preferences_form": preferences_form or _preferences_form(request),
            "channels": CHANNELS,
            "endpoint_form": endpoint_form or EndpointForm(),
            "endpoints": selectors.endpoints_for(request.user),
            "new_secret": new_secret,
        },
        status=status,
    )


@login_required
@require_POST
def mark_read(request):
    """Mark one notification (`id`) or all of them read."""
    ids = None
    if "id" in request.POST:
        ids = [selectors.notification_for(request.user, request.POST["id"]).pk]
    services.mark_read(request.user, ids)
    return redirect("notifications-page")


@login_required
@require_POST
def add_endpoint(request):
    form = EndpointForm(request.POST)
    if form.is_valid():
        try:
            made = services.add_endpoint(request.user, form.cleaned_data["url"])
        except ValidationError as error:
            form.add_error("url", error)
        else:
            request.session[NEW_SECRET_SESSION_KEY] = {
                "url": made.endpoint.url,
                "secret": made.secret,
            }
            return redirect("notifications-page")
    return _render(request, endpoint_form=form, status=400)


@login_required
@require_POST
def endpoint_action(request, endpoint_pk: int, action: str):
    endpoint = selectors.endpoint_for(request.user, endpoint_pk)
    if action == "delete":
        endpoint.delete()
        messages.success(request, f"Deleted the webhook endpoint {endpoint.url}.")
    elif action in ("disable", "enable"):
        services.set_endpoint_active(endpoint, action == "enable")
        messages.success(request, f"{action.title()}d {endpoint.url}.")
    elif action == "test":
        if not endpoint.active:
            messages.error(request, "Enable the endpoint to send it a test.")
        else:
            services.send_test(endpoint)
            messages.success(request, f"A test delivery to {endpoint.url} is on its way.")
    else:
        raise Http404("No such action.")
    return redirect("notifications-page")
