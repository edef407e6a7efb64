"""Django's Redis cache made cheaper per call, and Lua scripts on the server behind it.

RedisCache is Django's, keeping one redis-py client per server: Django's makes a new one
for every cache call, and building one (its response callbacks and all) costs more CPU than
the call itself. A client is safe to share between threads: each command takes a
connection from the pool and gives it back.

Scripts do a read-compare-write in one round trip where the cache API would need several
calls (and a lock around them). Keys and values go in as the cache writes them (its key
function; its serializer: integers as digits, anything else pickled), so `cache.get` reads
what a script stored.
"""

from __future__ import annotations

from django.core.cache import caches
from django.core.cache.backends import redis as django_redis
from django.core.cache.backends.base import BaseCache
from django.utils.connection import ConnectionProxy
from redis.commands.core import Script


class _KeptClients(django_redis.RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))  # pools are kept for the cache's lifetime
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(django_redis.RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = _KeptClients


# redis-py's scripts by source: each knows its SHA, and loads itself on a NOSCRIPT error.
_scripts: dict[str, Script] = {}


def redis_cache(store: BaseCache | None = None) -> django_redis.RedisCache | None:
    """`store` (else the default cache) when it is a Redis cache, else None."""
    if store is None:
        store = caches["default"]
    elif isinstance(store, ConnectionProxy):  # django.core.cache.cache
        store = store._connections[store._alias]
    return store if isinstance(store, django_redis.RedisCache) else None


def serialized(store: django_redis.RedisCache, value: object) -> bytes | int:
    """`value` as the cache stores it (what its `get` loads back)."""
    return store._cache._serializer.dumps(value)


def run(store: django_redis.RedisCache, source: str, keys: list[str], args: list[object]) -> object:
    """Run the script `source` on `keys` (cache keys: versioned and prefixed here) with `args`
    (bytes, str or numbers, sent as they are) in one round trip (EVALSHA)."""
    server_keys = [store.make_and_validate_key(key) for key in keys]
    client = store._cache.get_client(server_keys[0], write=True)
    script = _scripts.get(source)
    if script is None:
        script = _scripts[source] = client.register_script(source)
    return script(keys=server_keys, args=args, client=client)
