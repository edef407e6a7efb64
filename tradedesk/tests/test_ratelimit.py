"""The cache-counted rate limits every door of a rule shares."""

from __future__ import annotations

import threading

import pytest
from django.core.cache import cache

from tradedesk import ratelimit
from tradedesk.ratelimit import Rate, RateLimitExceeded


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("120/min", Rate(120, 60)),
        ("5/10s", Rate(5, 10)),
        ("1000/day", Rate(1000, 86400)),
        (" 3 / hour ", Rate(3, 3600)),
        ("", None),
        (None, None),
        ("0/min", None),
    ],
)
def test_rates_are_written_as_count_per_period(text, rate):
    assert ratelimit.parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "10", "10/fortnight", "-1/min", "1.5/min"])
def test_a_rate_that_is_not_one_is_refused(text):
    with pytest.raises(ValueError, match="not a rate"):
        ratelimit.parse_rate(text)


def test_the_request_past_the_count_is_refused_with_the_wait():
    for _ in range(3):
        ratelimit.hit("place", "user:1", "3/min")
    with pytest.raises(RateLimitExceeded) as refused:
        ratelimit.hit("place", "user:1", "3/min")
    assert refused.value.scope == "place"
    assert 1 <= refused.value.retry_after <= 60
    assert "try again in" in refused.value.message


def test_keys_and_scopes_are_counted_apart():
    ratelimit.hit("place", "user:1", "1/min")
    ratelimit.hit("place", "user:2", "1/min")
    ratelimit.hit("cancel", "user:1", "1/min")
    with pytest.raises(RateLimitExceeded):
        ratelimit.hit("place", "user:1", "1/min")


def test_no_rate_means_no_limit():
    for _ in range(50):
        ratelimit.hit("place", "user:1", "")


def test_check_does_not_count_and_reset_forgets():
    ratelimit.check("login", "bob", "2/min")
    ratelimit.hit("login", "bob", "2/min")
    ratelimit.check("login", "bob", "2/min")
    ratelimit.hit("login", "bob", "2/min")
    with pytest.raises(RateLimitExceeded):
        ratelimit.check("login", "bob", "2/min")
    ratelimit.reset("login", "bob", "2/min")
    ratelimit.check("login", "bob", "2/min")


def test_simultaneous_requests_get_exactly_the_count_through():
    cache.clear()
    passed, barrier = [], threading.Barrier(16)

    def request():
        barrier.wait()
        try:
            ratelimit.hit("place", "user:9", "5/min")
        except RateLimitExceeded:
            return
        passed.append(1)

    threads = [threading.Thread(target=request) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(passed) == 5
