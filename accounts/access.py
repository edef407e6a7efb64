"""The allowlist and the two-factor requirement at each door: the pages (middleware), the API
(a DRF permission on every view) and the stream (its connect). The rules are in services."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import redirect, render
from django.utils.http import urlencode
from rest_framework.permissions import BasePermission

from tradedesk.client_ip import client_address, scope_client_address

from . import services
from .models import User

SECURITY_PAGE = "/accounts/security/"
# Where a user who still has to enrol may go.
ENROLMENT_PATHS = (SECURITY_PAGE, "/accounts/logout/")


def second_factor_verified(request) -> bool:
    """Did this request's session or token pass a second factor? (A JWT carries the claim
    when it was issued after a code; a session is verified by django-otp's login.)"""
    token = getattr(request, "auth", None)
    if token is not None and hasattr(token, "get"):
        return bool(token.get(services.SECOND_FACTOR_CLAIM, False))
    is_verified = getattr(request.user, "is_verified", None)
    return bool(is_verified is not None and is_verified())


def stream_address_allowed(user: User, scope) -> bool:
    """The stream's door: may `user` connect from this connection's client address?"""
    return services.address_allowed(user, scope_client_address(scope))


class AccessPolicy(BasePermission):
    """Every API view: the caller's allowlist, and a second factor where one is required
    (tokens issued before it was required carry no claim and are refused)."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return True  # IsAuthenticated (or the view's own rule) answers for the anonymous
        if not services.address_allowed(user, client_address(request)):
            raise services.AddressNotAllowed()
        if services.second_factor_required(user) and not second_factor_verified(request):
            raise services.refusal_for_missing_second_factor(user)
        return True


class AccessMiddleware:
    """The pages (the API has AccessPolicy): a session from outside the user's allowlist gets
    a 403 page; a user who must use a second factor and whose session has not passed one is
    sent to enrol, or to log in again with the code. An order page refusing for want of a
    second factor (SecondFactorRequired) is answered the same way."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info
        if path.startswith(("/api/", settings.STATIC_URL)):
            return self.get_response(request)
        user = request.user
        if user.is_authenticated:
            if not services.address_allowed(user, client_address(request)):
                return address_refused_page(request)
            if (
                not path.startswith(ENROLMENT_PATHS)
                and services.second_factor_required(user)
                and not user.is_verified()
            ):
                return self._second_factor_page(
                    request, services.refusal_for_missing_second_factor(user)
                )
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, services.SecondFactorRequired) and not request.path.startswith(
            "/api/"
        ):
            return self._second_factor_page(request, exception)
        return None

    @staticmethod
    def _second_factor_page(request, refusal: services.SecondFactorRequired):
        messages.warning(request, refusal.message)
        if refusal.code == services.OTP_REQUIRED:
            # A session from before the user enrolled: log in again, with the code this time.
            logout(request)
            return redirect_to_login(request.get_full_path())
        return redirect(f"{SECURITY_PAGE}?{urlencode({'next': request.get_full_path()})}")


def address_refused_page(request):
    return render(
        request,
        "accounts/address_not_allowed.html",
        {"address": client_address(request)},
        status=403,
    )
