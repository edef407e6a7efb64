"""How the adapter talks HTTP through alpaca-py: timeouts, pacing and error translation.

alpaca-py's requests session has no timeout and retries 429/504 on its own (3 x 3 s,
order submission included). The adapter mounts its own transport adapter on each client's
session: every real HTTP request (including the data client's page follow-ups) is paced
against the account's shared budget and gets a timeout, and the SDK's retries are turned
off so errors reach the desk at once, translated by `translate_error`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable

import requests
from alpaca.common.exceptions import APIError
from alpaca.common.rest import RESTClient
from django.core.cache import cache
from pydantic import ValidationError
from requests.adapters import HTTPAdapter

from ..errors import (
    AuthenticationFailed,
    BrokerError,
    BrokerUnavailable,
    NotCancelable,
    OrderNotFound,
    OrderRejected,
    RateLimited,
)

log = logging.getLogger(__name__)

# Pacing windows are short so a burst (a page load asking for account, positions and
# quotes) goes out at once, and long enough that the per-window budget is a whole number.
PACING_WINDOW_SECONDS = 5


class Pacer:
    """A fixed-window request budget per Alpaca key, kept in Django's cache.

    Alpaca allows ~200 requests/min per account across every process using the key; the
    cache is Redis in production, so web and worker processes draw from one budget. A
    window's count is an atomic `incr`; a caller over budget sleeps until the next window.
    Budget per window is rounded down, so the minute's total stays under the setting.
    """

    def __init__(
        self,
        key_id: str,
        requests_per_minute: int,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        # The key id is an account identifier: keep it out of cache key listings.
        self._prefix = "alpaca:pace:" + hashlib.sha256(key_id.encode()).hexdigest()[:16]
        self.budget = max(1, requests_per_minute * PACING_WINDOW_SECONDS // 60)
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> None:
        try:
            self._wait_for_budget()
        except Exception:
            # Best effort: with the cache down, send anyway; Alpaca's 429 is the backstop.
            log.warning("Alpaca request pacing unavailable", exc_info=True)

    def _wait_for_budget(self) -> None:
        while True:
            now = self._clock()
            window = math.floor(now / PACING_WINDOW_SECONDS)
            key = f"{self._prefix}:{window}"
            cache.add(key, 0, timeout=PACING_WINDOW_SECONDS * 2)
            try:
                used = cache.incr(key)
            except ValueError:  # the key expired between add and incr: a fresh window
                continue
            if used <= self.budget:
                return
            self._sleep((window + 1) * PACING_WINDOW_SECONDS - now)


class _PacedTimeoutAdapter(HTTPAdapter):
    def __init__(self, pacer: Pacer, timeout: float):
        super().__init__()
        self._pacer = pacer
        self._timeout = timeout

    def send(self, request, **kwargs):  # type: ignore[override]
        self._pacer.acquire()
        # alpaca-py passes no timeout (None): without this a hung server hangs the caller.
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().send(request, **kwargs)


def harden(client: RESTClient, pacer: Pacer, timeout: float) -> None:
    """Give an alpaca-py client a timeout and pacing, and switch its retries off."""
    adapter = _PacedTimeoutAdapter(pacer, timeout)
    client._session.mount("http://", adapter)
    client._session.mount("https://", adapter)
    # alpaca-py sleeps 3 s and repeats on 429/504, up to 3 times. A 429 should reach the
    # caller with its Retry-After, and a 504 on a submit may have been accepted: the desk
    # reconciles by client_order_id rather than resubmitting blindly.
    client._retry = 0


def _error_body(exc: APIError) -> dict:
    try:
        body = json.loads(str(exc))
    except ValueError:
        return {"message": str(exc)}
    return body if isinstance(body, dict) else {"message": str(body)}


def _retry_after(response: requests.Response | None, requests_per_minute: int) -> float:
    """Seconds until Alpaca takes requests again: its Retry-After, else its X-RateLimit-Reset
    (epoch seconds), else one request's share of the minute."""
    headers = response.headers if response is not None else {}
    try:
        if headers.get("Retry-After"):
            return max(0.0, float(headers["Retry-After"]))
        if headers.get("X-RateLimit-Reset"):
            return max(0.0, float(headers["X-RateLimit-Reset"]) - time.time())
    except ValueError:
        pass  # an unparseable header is no worse than a missing one
    return 60 / max(1, requests_per_minute)


# What alpaca-py and requests raise; `translate_error` turns each into a desk error.
SDK_ERRORS = (APIError, requests.RequestException, ValidationError)


def translate_error(
    exc: Exception,
    *,
    requests_per_minute: int,
    modifying_order: bool = False,
    missing_is_rejection: bool = False,
) -> BrokerError:
    """The one place alpaca-py's and requests' exceptions become the desk's errors.

    modifying_order: a cancel or replace, where Alpaca's 422 means "not cancelable".
    missing_is_rejection: a 404 that isn't about an order (an unknown asset).
    """
    if isinstance(exc, requests.Timeout):
        return BrokerUnavailable(f"Alpaca did not answer in time: {exc}")
    if isinstance(exc, requests.RequestException):
        return BrokerUnavailable(f"cannot reach Alpaca: {exc}")
    if isinstance(exc, ValidationError):
        # A response alpaca-py can't parse: the broker may have acted, the desk can't tell.
        return BrokerUnavailable(f"unexpected response from Alpaca: {exc}")
    assert isinstance(exc, APIError)
    status = exc.status_code or 0
    body = _error_body(exc)
    message = str(body.get("message") or f"Alpaca returned HTTP {status}")
    code = body.get("code")
    if status == 401 or (status == 403 and code is None):
        # Alpaca refuses bad keys with 401, or 403 "forbidden" (no code) on some hosts;
        # a 403 with a code is a trading refusal (40310000 insufficient buying power).
        return AuthenticationFailed(message, code=code)
    if status == 429:
        return RateLimited(
            message,
            retry_after=_retry_after(exc.response, requests_per_minute),
            code=code,
        )
    if status >= 500:
        return BrokerUnavailable(message, code=code)
    if status == 404 and not missing_is_rejection:
        return OrderNotFound(message, code=code)
    if status == 422 and modifying_order:
        return NotCancelable(message, code=code, http_status=status)
    return OrderRejected(message, code=code, http_status=status)
