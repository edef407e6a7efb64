from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from tradedesk.broker.errors import BrokerUnavailable

from . import selectors, services
from .forms import LinkAlpacaAccountForm, SignupForm


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # The form checked the passwords; the service creates the user and the paper account.
        user = services.register_user(
            username=form.cleaned_data["username"],
            password=form.cleaned_data["password1"],
            email=form.cleaned_data.get("email", ""),
        )
        login(request, user)
        return redirect("home")
    return render(request, "accounts/signup.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
def broker_accounts(request):
    """List the trader's broker accounts; POST links an Alpaca account."""
    form = LinkAlpacaAccountForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                account = services.link_broker_account(
                    user=request.user,
                    provider="alpaca",
                    label=data["label"],
                    paper=data["mode"] == "paper",
                    key_id=data["key_id"],
                    secret=data["secret"],
                    is_default=data["is_default"],
                    confirm_live=data["confirm_live"],
                )
            except services.LinkError as error:
                field = error.field if error.field in form.fields else None
                form.add_error(field, error.message)
            except BrokerUnavailable as error:
                form.add_error(None, f"Alpaca is unreachable right now: {error.message}")
                status = 503
            else:
                messages.success(request, f"Linked {account}.")
                return redirect("broker-accounts")
    return render(
        request,
        "accounts/brokers.html",
        {"accounts": selectors.active_broker_accounts(request.user), "form": form},
        status=status,
    )


@login_required
@require_POST
def make_default_broker_account(request, account_id: int):
    account = selectors.broker_account_for(request.user, account_id)
    services.set_default_broker_account(account)
    messages.success(request, f"{account} is now your default account.")
    return redirect("broker-accounts")


@login_required
@require_POST
def remove_broker_account(request, account_id: int):
    account = selectors.broker_account_for(request.user, account_id)
    services.unlink_broker_account(account)
    messages.success(request, f"Removed {account}; its orders stay in your history.")
    return redirect("broker-accounts")


@never_cache
@login_required
@require_POST
def stream_token(request):
    """A stream-only token for the pages' WebSocket: it opens the stream, once, within
    STREAM_TOKEN_SECONDS, and the API refuses it (accounts.services.StreamToken).

    Fetched by the pages' script on each (re)connect, so no token sits in the HTML and an
    expired one is simply replaced; POST so that only this site's pages (CSRF) can get one.
    """
    return JsonResponse({"access": services.stream_token_for(request.user)})


class PasswordChange(auth_views.PasswordChangeView):
    """Django's password change; saving the new password revokes every session, token and
    stream of the user (accounts.services.revoke_on_change), then Django keeps this one."""

    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("home")

    def form_valid(self, form):
        response = super().form_valid(form)
        messages.success(
            self.request,
            "Password changed: your other sessions, API tokens and streams were ended.",
        )
        return response
