from __future__ import annotations

import time

import django_otp
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from tradedesk.broker.errors import BrokerUnavailable
from tradedesk.client_ip import client_address
from tradedesk.ratelimit import RateLimitExceeded

from . import selectors, services
from .access import address_refused_page
from .forms import AllowlistForm, CodeForm, LinkAlpacaAccountForm, LoginForm, SignupForm
from .models import User

# A password step waits this long for its code.
PENDING_LOGIN_SECONDS = 300
PENDING_LOGIN_KEY = "accounts_pending_login"


def _next_url(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return settings.LOGIN_REDIRECT_URL


@sensitive_post_parameters("password")
@never_cache
@require_http_methods(["GET", "POST"])
def log_in(request):
    """The password step; a user with a second factor goes on to the code step."""
    next_url = _next_url(request)
    if request.user.is_authenticated:
        return redirect(next_url)
    form = LoginForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            outcome = services.authenticate_login(
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password"],
                otp="",
                address=client_address(request),
            )
        except services.SecondFactorNeeded as needed:
            request.session[PENDING_LOGIN_KEY] = {
                "user": needed.user.pk,
                "backend": needed.user.backend,
                "next": next_url,
                "until": time.time() + PENDING_LOGIN_SECONDS,
            }
            return redirect("login-code")
        except services.LoginRefused as refused:
            if refused.code == services.ADDRESS_NOT_ALLOWED:
                return address_refused_page(request)
            form.add_error(None, refused.message)
        except RateLimitExceeded as limited:
            form.add_error(None, limited.message)
            status = 429
        else:
            return _logged_in(request, outcome, next_url)
    return render(request, "accounts/login.html", {"form": form, "next": next_url}, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
def log_in_code(request):
    """The code step: the session is logged in only once the code passes."""
    pending = request.session.get(PENDING_LOGIN_KEY)
    user = None
    if pending and pending["until"] > time.time():
        user = User.objects.filter(pk=pending["user"], is_active=True).first()
    if user is None:
        request.session.pop(PENDING_LOGIN_KEY, None)
        messages.warning(request, "Log in again: the code step expired.")
        return redirect("login")
    form = CodeForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            outcome = services.authenticate_second_factor(
                user=user, otp=form.cleaned_data["otp"], address=client_address(request)
            )
        except services.LoginRefused as refused:
            form.add_error("otp", refused.message)
            status = 401
        except RateLimitExceeded as limited:
            request.session.pop(PENDING_LOGIN_KEY, None)
            form.add_error(None, limited.message)
            status = 429
        else:
            del request.session[PENDING_LOGIN_KEY]
            user.backend = pending["backend"]
            return _logged_in(request, outcome, pending["next"])
    return render(request, "accounts/login_code.html", {"form": form}, status=status)


def _logged_in(request, outcome: services.Login, next_url: str):
    login(request, outcome.user)  # authenticate() named the backend on the user
    if outcome.device is not None:
        django_otp.login(request, outcome.device)
    if outcome.must_enrol:
        messages.warning(request, "Two-factor authentication is required: set it up now.")
        return redirect(f"{reverse('security')}?{urlencode({'next': next_url})}")
    return redirect(next_url)


def admin_login(request, extra_context=None):
    """The admin's login form would be a third door without the limits or the second factor:
    operators log in through the desk's login page."""
    if request.user.is_authenticated:
        raise PermissionDenied("This account has no access to the admin.")
    return redirect(f"{settings.LOGIN_URL}?{request.GET.urlencode()}")


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("home")
    form = SignupForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        # The form checked the passwords; the service creates the user and the paper account.
        try:
            user = services.sign_up(
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password1"],
                email=form.cleaned_data.get("email", ""),
                address=client_address(request),
            )
        except RateLimitExceeded as limited:
            form.add_error(None, f"Too many new accounts from your network. {limited.message}")
            status = 429
        else:
            login(request, user)
            return redirect("home")
    return render(request, "accounts/signup.html", {"form": form}, status=status)


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def security(request):
    """Two-factor enrolment (QR code and secret, confirmed with a code; recovery codes shown
    once), turning it off with a code, and the IP allowlist."""
    user = request.user
    action = request.POST.get("action") if request.method == "POST" else None
    code_form = CodeForm(request.POST if action in ("enrol", "disable") else None)
    allowlist_form = AllowlistForm(
        request.POST if action == "allowlist" else None,
        initial={"ip_allowlist": user.ip_allowlist},
    )
    status = 200 if action is None else 400
    recovery_codes: list[str] = []
    if action in ("enrol", "disable") and code_form.is_valid():
        otp = code_form.cleaned_data["otp"]
        try:
            if action == "enrol":
                device, recovery_codes = services.confirm_enrolment(user=user, otp=otp)
                # This session has just shown a code.
                django_otp.login(request, device)
                status = 200
            else:
                services.disable_second_factor(user=user, otp=otp)
                messages.success(request, "Two-factor authentication is off.")
                return redirect("security")
        except services.LoginRefused as refused:
            code_form.add_error("otp", refused.message)
    elif action == "allowlist" and allowlist_form.is_valid():
        try:
            services.set_ip_allowlist(
                user=user,
                text=allowlist_form.cleaned_data["ip_allowlist"],
                current_address=client_address(request),
            )
        except ValidationError as invalid:
            allowlist_form.add_error("ip_allowlist", invalid)
        else:
            messages.success(request, "Your IP allowlist is saved.")
            return redirect("security")
    enrolled = services.has_second_factor(user)
    enrolment = None if enrolled else services.start_enrolment(user)
    return render(
        request,
        "accounts/security.html",
        {
            "enrolled": enrolled,
            "required": services.second_factor_required(user),
            "enrolment": enrolment,
            "qr_svg": mark_safe(enrolment.qr_svg) if enrolment else "",  # noqa: S308 (ours)
            "recovery_codes": recovery_codes,
            "code_form": code_form,
            "allowlist_form": allowlist_form,
            "address": client_address(request),
            "next": _next_url(request) if "next" in request.GET else "",
        },
        status=status,
    )


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
