"""Alpaca's error bodies, and the desk's refusals mapped to the nearest Alpaca code (the
desk's own code in the message)."""

from __future__ import annotations

import json
import time

from django.http import JsonResponse

from accounts.services import SecondFactorRequired
from orders import services as orders
from tradedesk.broker.errors import (
    AuthenticationFailed,
    BrokerUnavailable,
    OrderRejected,
    RateLimited,
)
from tradedesk.ratelimit import RateLimitExceeded

from .services import KeyLimitExceeded, KeyRefused
from .wire import BadRequest

UNAUTHORIZED = 40110000
FORBIDDEN = 40310000
NOT_FOUND = 40410000
MALFORMED = 40010000
INVALID = 40010001
UNPROCESSABLE = 42210000
TOO_MANY = 42910000
UNAVAILABLE = 50010000

# Desk gate codes Alpaca answers with 403 (the account may not do this now); every other gate
# code is a 422 (the order itself is wrong: shape, sub-penny, unknown asset, wash trade, …).
FORBIDDEN_GATE_CODES = frozenset(
    {
        "insufficient_buying_power",
        "trading_halted",
        "reducing_only",
        "account_blocked",
        "not_shortable",
        "max_position_size",
        "max_daily_trades",
        "max_order_quantity",
    }
)


def error(status: int, code: int, message: str, **extra) -> JsonResponse:
    return JsonResponse({"code": code, "message": message, **extra}, status=status)


def order_not_found() -> JsonResponse:
    return error(404, NOT_FOUND, "order not found")


def rate_limited(limit: int | None, retry_after: int, message: str) -> JsonResponse:
    response = error(429, TOO_MANY, f"rate limit exceeded: {message}")
    response["Retry-After"] = str(retry_after)
    response["X-RateLimit-Limit"] = str(limit or 0)
    response["X-RateLimit-Remaining"] = "0"
    response["X-RateLimit-Reset"] = str(int(time.time()) + retry_after)
    return response


def gate_refusal(invalid: orders.OrderInvalid) -> JsonResponse:
    """The gate's first error as Alpaca's answer: a broker's own refusal keeps its status and
    code; the desk's checks map by FORBIDDEN_GATE_CODES."""
    issue = invalid.verdict.errors[0]
    if isinstance(invalid.__cause__, OrderRejected):
        return broker_refusal(invalid.__cause__)
    if issue.code in FORBIDDEN_GATE_CODES:
        return error(403, FORBIDDEN, f"{issue.message} ({issue.code})")
    return error(422, UNPROCESSABLE, f"{issue.message} ({issue.code})")


def broker_refusal(refused: OrderRejected) -> JsonResponse:
    """The broker's own refusal (Alpaca's, or the paper exchange's in Alpaca's terms) as it came:
    its status and numeric code where it has them."""
    status = refused.http_status if refused.http_status in (403, 404, 422) else 422
    code = int(refused.code) if str(refused.code or "").isdigit() else UNPROCESSABLE
    return error(status, code, refused.message)


def for_exception(exc: Exception, *, rate_limit_count: int | None = None) -> JsonResponse | None:
    """Alpaca's answer to anything a service raised (None: not one the gateway knows)."""
    if isinstance(exc, KeyRefused):
        if exc.status == 403:
            return error(403, FORBIDDEN, f"forbidden: {exc.reason}")
        return error(401, UNAUTHORIZED, "request is not authorized")
    if isinstance(exc, BadRequest):
        return error(422, INVALID, str(exc))
    if isinstance(exc, orders.OrderInvalid):
        return gate_refusal(exc)
    if isinstance(exc, orders.IdempotencyConflict):
        return error(422, INVALID, "client_order_id must be unique")
    if isinstance(exc, KeyLimitExceeded):
        return error(403, FORBIDDEN, f"{exc.message} (key_max_notional)")
    if isinstance(exc, SecondFactorRequired):
        return error(403, FORBIDDEN, f"{exc.message} ({exc.code})")
    if isinstance(exc, orders.OrderNotModifiable):
        return error(422, UNPROCESSABLE, f"{exc.message} ({exc.code})")
    if isinstance(exc, orders.NoPosition):
        return error(404, NOT_FOUND, "position does not exist")
    if isinstance(exc, RateLimitExceeded):
        return rate_limited(rate_limit_count, exc.retry_after, exc.message)
    if isinstance(exc, RateLimited):
        return rate_limited(None, max(1, round(exc.retry_after)), "the broker is rate limiting")
    if isinstance(exc, orders.SubmissionPending):
        return error(
            503,
            UNAVAILABLE,
            f"the broker did not confirm the order ({exc.message}); it is kept pending: "
            f"look it up by client_order_id {exc.order.client_order_id}",
        )
    if isinstance(exc, BrokerUnavailable):
        return error(503, UNAVAILABLE, f"the broker is unreachable: {exc.message}")
    if isinstance(exc, OrderRejected):
        return broker_refusal(exc)
    if isinstance(exc, AuthenticationFailed):
        return error(503, UNAVAILABLE, "the broker refused this account's credentials")
    return None


def multi_status_item(exc: Exception) -> dict:
    """A refusal as an item of a 207 body: its status and Alpaca's error body."""
    response = for_exception(exc)
    return {"status": response.status_code, "body": json.loads(response.content)}
