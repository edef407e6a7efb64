"""Lua scripts on the Redis server behind Django's cache: a read-compare-write in one round
trip where the cache API would need several calls (and a lock around them).

Keys and values go in as Django's RedisCache writes them (its key function; its serializer:
integers as digits, anything else pickled), so `cache.get` reads what a script stored.
"""

from __future__ import annotations

from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.redis import RedisCache
from django.utils.connection import ConnectionProxy
from redis.commands.core import Script

# redis-py's scripts by source: each knows its SHA, and loads itself on a NOSCRIPT error.
_scripts: dict[str, Script] = {}


def redis_cache(store: BaseCache | None = None) -> RedisCache | None:
    """`store` (else the default cache) when it is Django's RedisCache, else None."""
    if store is None:
        store = caches["default"]
    elif isinstance(store, ConnectionProxy):  # django.core.cache.cache
        store = store._connections[store._alias]
    return store if isinstance(store, RedisCache) else None


def serialized(store: RedisCache, value: object) -> bytes | int:
    """`value` as the cache stores it (what its `get` loads back)."""
    return store._cache._serializer.dumps(value)


def run(store: RedisCache, source: str, keys: list[str], args: list[object]) -> object:
    """Run the script `source` on `keys` (cache keys: versioned and prefixed here) with `args`
    (bytes, str or numbers, sent as they are) in one round trip (EVALSHA)."""
    server_keys = [store.make_and_validate_key(key) for key in keys]
    client = store._cache.get_client(server_keys[0], write=True)
    script = _scripts.get(source)
    if script is None:
        script = _scripts[source] = client.register_script(source)
    return script(keys=server_keys, args=args, client=client)
