"""The Redis cache keeps its clients; scripts write what the cache reads."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.cache import cache, caches

from conftest import require_service
from tradedesk import rediscache

pytestmark = pytest.mark.services


@pytest.fixture(autouse=True)
def _redis():
    require_service("Redis (REDIS_URL)", bool(settings.REDIS_URL))


def test_one_client_serves_every_call_of_the_cache():
    store = caches["default"]._cache

    assert store.get_client("a") is store.get_client("b", write=True)
    cache.set("kept", {"client": 1})
    assert cache.get("kept") == {"client": 1}


def test_a_script_writes_keys_and_values_as_the_cache_reads_them():
    redis = rediscache.redis_cache(cache)
    value = {"qty": "1.5", "symbols": ["AAPL"]}

    rediscache.run(
        redis,
        "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[2])",
        ["scripted:pickled", "scripted:int"],
        [rediscache.serialized(redis, value), rediscache.serialized(redis, 42)],
    )

    assert cache.get("scripted:pickled") == value
    assert cache.get("scripted:int") == 42
    assert cache.incr("scripted:int") == 43  # an integer stays one: incr works on it


def test_only_a_redis_cache_is_taken_for_scripts():
    assert rediscache.redis_cache() is caches["default"]
    assert rediscache.redis_cache(caches["local"]) is None
