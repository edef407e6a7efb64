"""Rate limits counted in Django's cache (Redis in production), one counter per rule and key.

A rule's limit lives in the service that owns the rule, so every door (API, page, admin,
gateway, task) meets the same counter: the API answers RateLimitExceeded with 429 and
Retry-After, a page with a form error saying when to retry.

Fixed windows: a window's counter is opened with its expiry and counted in atomically, so N
simultaneous requests get exactly `count` through: on Redis by one script (INCR, and EXPIRE
when it opened the counter: one round trip), elsewhere by `cache.add` then `cache.incr`.
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

from . import rediscache

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
    cache_key, retry_after = _window(scope, key, rate, time.time())
    used = _count(store or cache, cache_key, rate.seconds + 1)
    if used > rate.count:
        raise RateLimitExceeded(scope, retry_after)


# The counter and its expiry in one step: no counter is ever left without one.
_COUNT_SCRIPT = """
local used = redis.call('INCR', KEYS[1])
if used == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return used
"""


def _count(store: BaseCache, cache_key: str, timeout: int) -> int:
    """Count one in `cache_key`'s counter (opened for `timeout` s); the count so far."""
    redis = rediscache.redis_cache(store)
    if redis is not None:
        return rediscache.run(redis, _COUNT_SCRIPT, [cache_key], [timeout])
    store.add(cache_key, 0, timeout)
    try:
        return store.incr(cache_key)
    except ValueError:  # expired between add and incr: this request opens the window
        store.add(cache_key, 1, timeout)
        return 1


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
