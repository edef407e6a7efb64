"""Rate limits counted in Django's cache (Redis in production), one counter per rule and key.

A rule's limit lives in the service that owns the rule, so every door (API, page, admin,
gateway, task) meets the same counter: the API answers RateLimitExceeded with 429 and
Retry-After, a page with a form error saying when to retry.

Fixed windows: `cache.add` opens a window's counter, `cache.incr` counts in it (both atomic in
Redis and in the local-memory cache), so N simultaneous requests get exactly `count` through.
A burst across a window's edge may see up to twice the rate, which is acceptable for limits
whose job is to stop floods, not to meter.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

from django.core.cache import cache
from django.core.cache.backends.base import BaseCache

_PERIODS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.count} per {self.seconds} s"


def parse_rate(text: str | None) -> Rate | None:
    """'120/min', '5/10s', '1000/day'; empty or '0/…' means no limit (None)."""
    if not text or not text.strip():
        return None
    match = _RATE_RE.match(text.lower())
    if match is None or match.group(3) not in _PERIODS:
        raise ValueError(f"not a rate: {text!r} (write it as 120/min, 5/10s, 1000/day)")
    count, multiple, period = int(match.group(1)), int(match.group(2) or 1), match.group(3)
    if count == 0:
        return None
    return Rate(count=count, seconds=max(1, multiple) * _PERIODS[period])


class RateLimitExceeded(Exception):
    """Too many requests for one rule and key; `retry_after` is whole seconds to wait."""

    def __init__(self, scope: str, retry_after: int, message: str | None = None):
        self.scope = scope
        self.retry_after = max(1, retry_after)
        self.message = message or (
            f"Too many requests; try again in {self.retry_after} second"
            f"{'' if self.retry_after == 1 else 's'}."
        )
        super().__init__(self.message)


def _as_rate(rate: str | Rate | None) -> Rate | None:
    return rate if isinstance(rate, Rate) else parse_rate(rate)


def _window(scope: str, key: str, rate: Rate, now: float) -> tuple[str, int]:
    index = int(now // rate.seconds)
    retry_after = math.ceil((index + 1) * rate.seconds - now)
    return f"ratelimit:{scope}:{key}:{index}", retry_after


def hit(scope: str, key: str, rate: str | Rate | None, *, store: BaseCache | None = None) -> None:
    """Count one request; raise RateLimitExceeded when it is over the rate. `store`: another
    cache than the default one, e.g. a process-local one for a limit on something that lives
    in one process (a stream connection), where a Redis round trip per message would cost."""
    rate = _as_rate(rate)
    if rate is None:
        return
    store = store or cache
    cache_key, retry_after = _window(scope, key, rate, time.time())
    store.add(cache_key, 0, rate.seconds + 1)
    try:
        used = store.incr(cache_key)
    except ValueError:  # expired between add and incr: this request opens the window
        store.add(cache_key, 1, rate.seconds + 1)
        used = 1
    if used > rate.count:
        raise RateLimitExceeded(scope, retry_after)


def check(scope: str, key: str, rate: str | Rate | None) -> None:
    """Raise RateLimitExceeded if the rule is already used up, without counting a request
    (a login's per-address rule: checked first, counted only when the login fails)."""
    rate = _as_rate(rate)
    if rate is None:
        return
    cache_key, retry_after = _window(scope, key, rate, time.time())
    if (cache.get(cache_key) or 0) >= rate.count:
        raise RateLimitExceeded(scope, retry_after)


def reset(scope: str, key: str, rate: str | Rate | None) -> None:
    """Forget the current window's count (a successful login clears its username's)."""
    rate = _as_rate(rate)
    if rate is None:
        return
    cache.delete(_window(scope, key, rate, time.time())[0])
