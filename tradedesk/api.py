"""Project-wide API plumbing: one error shape, and JSON 404s under /api/."""

from __future__ import annotations

from django.http import JsonResponse
from rest_framework import status
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from tradedesk.broker.errors import (
    AuthenticationFailed,
    BrokerUnavailable,
    CredentialsUnreadable,
    RateLimited,
)
from tradedesk.ratelimit import RateLimitExceeded


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, but a body nested too deep to decode is a 400, not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None


def exception_handler(exc, context):
    """DRF's handler, plus broker outages as 503 and rate limits as 429 with Retry-After
    (the desk's own service-layer limits, whichever endpoint met them, and the broker's)."""
    if isinstance(exc, RateLimitExceeded):
        return Response(
            {"detail": exc.message, "code": "rate_limited"},
            status=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(exc.retry_after)},
        )
    if isinstance(exc, BrokerUnavailable):
        return Response(
            {
                "detail": f"The broker is unreachable right now: {exc.message}",
                "code": "broker_unavailable",
            },
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, CredentialsUnreadable):
        # The stored secret no configured key decrypts: nothing went to the broker.
        return Response(
            {"detail": exc.message, "code": "broker_credentials_unreadable"},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    if isinstance(exc, AuthenticationFailed):
        # The stored keys stopped working (revoked at the broker): not the client's request.
        return Response(
            {
                "detail": "The broker refused this account's credentials; link it again.",
                "code": "broker_credentials_refused",
            },
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    if isinstance(exc, RateLimited):
        return Response(
            {
                "detail": "The broker is rate limiting requests; retry later.",
                "code": "broker_rate_limited",
            },
            status=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(max(1, round(exc.retry_after)))},
        )
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, ParseError):
        response.data = {"detail": str(exc.detail), "code": "malformed_request"}
    return response


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"detail": "Internal server error.", "code": "server_error"}, status=500
        )
    from django.views.defaults import server_error as default_server_error

    return default_server_error(request)
