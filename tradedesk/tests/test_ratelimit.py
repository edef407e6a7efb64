"""The cache-counted rate limits every door of a rule shares."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
import redis.connection
from django.conf import settings
from django.core.cache import cache

from conftest import require_service
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


def test_a_window_counts_until_its_end_and_the_next_one_starts_at_one(monkeypatch):
    clock = [7 * 86400.0 + 10]  # 10 s into a minute
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: clock[0]))
    ratelimit.hit("place", "user:3", "2/min")
    clock[0] += 49
    ratelimit.hit("place", "user:3", "2/min")
    with pytest.raises(RateLimitExceeded) as refused:
        ratelimit.hit("place", "user:3", "2/min")
    assert refused.value.retry_after == 1  # 59 s into the minute

    clock[0] += 1  # the next minute
    ratelimit.hit("place", "user:3", "2/min")
    ratelimit.hit("place", "user:3", "2/min")
    with pytest.raises(RateLimitExceeded) as refused:
        ratelimit.hit("place", "user:3", "2/min")
    assert refused.value.retry_after == 60


@pytest.mark.services
def test_on_redis_a_hit_is_one_round_trip_and_its_counter_expires_after_the_window(
    monkeypatch,
):
    require_service("Redis (REDIS_URL)", bool(settings.REDIS_URL))
    rate = Rate(2, 60)
    ratelimit.hit("warm", "up", rate)  # the script is loaded on its first run
    sent = []
    send = redis.connection.AbstractConnection.send_packed_command

    def counted(connection, *args, **kwargs):
        sent.append(1)
        return send(connection, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    ratelimit.hit("place", "user:4", rate)
    assert len(sent) == 1

    key = ratelimit._window("place", "user:4", rate, ratelimit.time.time())[0]
    client = cache._cache.get_client(write=True)
    opened = client.ttl(cache.make_key(key))
    assert 60 <= opened <= 61  # the window's length and a second
    ratelimit.hit("place", "user:4", rate)
    with pytest.raises(RateLimitExceeded):
        ratelimit.hit("place", "user:4", rate)
    assert cache.get(key) == 3  # as the cache reads it (check() does)
    assert client.ttl(cache.make_key(key)) <= opened  # later hits do not push the expiry
