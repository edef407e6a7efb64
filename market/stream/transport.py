"""How the hub and the relays talk: Redis between processes, or memory inside one process.

A transport carries (1) the hub's published messages, each delivered once to every relay,
and (2) each relay process's interest (the symbols its connections want), which expires
when a process stops heartbeating, so the hub subscribes upstream to the live union.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator

logger = logging.getLogger(__name__)

# Pub/sub channels, named after the Redis database (see pubsub_channel()).
DATA_CHANNEL = "tradedesk:stream:data:{db}"
INTEREST_CHANNEL = "tradedesk:stream:interest:{db}"
PROCESSES_KEY = "tradedesk:stream:processes"
INTEREST_KEY = "tradedesk:stream:interest:{process_id}"
HUB_LOCK_KEY = "tradedesk:stream:hub-lock"
# A user's open connections across processes: lease id → expiry, renewed by each relay.
CONNECTIONS_KEY = "tradedesk:stream:connections:{user_id}"
# The transport's Redis connections per process (redis-py's default cap), and how long a
# command waits for one of them.
REDIS_POOL_SIZE, REDIS_POOL_WAIT_S = 100, 20.0
# A relay refreshes its interest every HEARTBEAT_S; the hub forgets it after INTEREST_TTL_S.
HEARTBEAT_S = 5.0
INTEREST_TTL_S = 15.0


# What messages() yields each time its subscription is (re)established: after the first, what
# was published in between is gone.
SUBSCRIBED = ""


def batch(envelopes: list[str]) -> str:
    """Envelopes (messages.envelope) published together as one payload, a line each (their
    JSON text holds no newline)."""
    return "\n".join(envelopes)


def open_batch(payload: str) -> Iterator[tuple[str, str, str]]:
    """(kind, symbol, body) of each envelope in a published payload, in order."""
    for line in payload.split("\n"):
        kind, symbol, body = line.split("|", 2)
        yield kind, symbol, body


def pubsub_channel(name: str, redis_url: str) -> str:
    """Redis pub/sub ignores the database number: deployments (and test runs) sharing a server
    on different databases would hear each other's data unless the channel names it."""
    from redis.asyncio.connection import parse_url

    return name.format(db=parse_url(redis_url).get("db", 0))


class Transport(abc.ABC):
    # --- relay side -----------------------------------------------------
    @abc.abstractmethod
    def messages(self) -> AsyncIterator[str]:
        """SUBSCRIBED, then every published payload once, in order; SUBSCRIBED again after a
        gap (a reconnect), and whatever was published during it is lost."""

    @abc.abstractmethod
    async def set_interest(self, process_id: str, symbols: set[str]) -> None:
        """Record (and refresh the lease on) what this process's connections want."""

    @abc.abstractmethod
    async def drop_interest(self, process_id: str) -> None: ...

    # --- hub side -------------------------------------------------------
    @abc.abstractmethod
    async def publish(self, payload: str) -> None:
        """Deliver a payload to every relay; the hub awaits each before the next."""

    @abc.abstractmethod
    async def wanted_symbols(self) -> set[str]:
        """The union of every live process's interest."""

    @abc.abstractmethod
    async def wait_interest_change(self, timeout: float) -> None:
        """Return when some process's interest changed, or after `timeout`."""

    # --- the per-user connection cap ------------------------------------
    @abc.abstractmethod
    async def claim_connection(self, user_id: int, lease_id: str, limit: int) -> bool:
        """Count a new connection of the user unless `limit` are open (atomically); False if
        they are. A claim lapses after INTEREST_TTL_S unless renewed."""

    @abc.abstractmethod
    async def renew_connections(self, leases: list[tuple[int, str]]) -> None: ...

    @abc.abstractmethod
    async def release_connection(self, user_id: int, lease_id: str) -> None: ...

    async def close(self) -> None:
        return None


class MemoryTransport(Transport):
    """The embedded run: hub and relay in one process, no server."""

    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[str]] = []
        self._interest: dict[str, set[str]] = {}
        self._changed = asyncio.Event()
        self._connections: dict[int, set[str]] = {}  # one process: nothing lapses

    async def messages(self) -> AsyncIterator[str]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._queues.append(queue)
        try:
            yield SUBSCRIBED
            while True:
                yield await queue.get()
        finally:
            self._queues.remove(queue)

    async def set_interest(self, process_id: str, symbols: set[str]) -> None:
        if self._interest.get(process_id) != symbols:
            self._interest[process_id] = set(symbols)
            self._changed.set()

    async def drop_interest(self, process_id: str) -> None:
        if self._interest.pop(process_id, None) is not None:
            self._changed.set()

    async def publish(self, payload: str) -> None:
        for queue in self._queues:
            queue.put_nowait(payload)

    async def wanted_symbols(self) -> set[str]:
        return set().union(*self._interest.values())

    async def wait_interest_change(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._changed.wait()
        self._changed.clear()

    async def claim_connection(self, user_id: int, lease_id: str, limit: int) -> bool:
        leases = self._connections.setdefault(user_id, set())
        if len(leases) >= limit:
            return False
        leases.add(lease_id)
        return True

    async def renew_connections(self, leases: list[tuple[int, str]]) -> None:
        return None

    async def release_connection(self, user_id: int, lease_id: str) -> None:
        leases = self._connections.get(user_id, set())
        leases.discard(lease_id)
        if not leases:
            self._connections.pop(user_id, None)


# Drop lapsed claims, then add this one if the user is under the limit: one atomic step, so
# simultaneous connections of one user across processes cannot all slip under it.
_CLAIM_CONNECTION = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class RedisTransport(Transport):
    """Production: one pub/sub channel for the data, a lease per process for interest."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        # Blocking: a burst of connections (each claims its lease) waits for a free pooled
        # connection instead of failing with MaxConnectionsError (seen as 1011s in a benchmark
        # whose 500 clients connected while the process was slow).
        pool = redis.BlockingConnectionPool.from_url(
            url, decode_responses=True, max_connections=REDIS_POOL_SIZE, timeout=REDIS_POOL_WAIT_S
        )
        self.redis = redis.Redis.from_pool(pool)  # closed with it
        self.data_channel = pubsub_channel(DATA_CHANNEL, url)
        self.interest_channel = pubsub_channel(INTEREST_CHANNEL, url)
        self._interest_pubsub = None
        self._publisher = None  # the hub's own connection (see publish)
        self._claim_connection = self.redis.register_script(_CLAIM_CONNECTION)

    async def messages(self) -> AsyncIterator[str]:
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(self.data_channel)
        try:
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                if message["type"] == "message":
                    yield message["data"]
                elif message["type"] == "subscribe":
                    # Also after redis-py reconnected and resubscribed by itself inside get_message
                    # (e.g. Redis dropped a subscriber over its client-output-buffer-limit).
                    yield SUBSCRIBED
        finally:
            await pubsub.aclose()

    async def set_interest(self, process_id: str, symbols: set[str]) -> None:
        key = INTEREST_KEY.format(process_id=process_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if symbols:
                pipe.sadd(key, *symbols)
                pipe.expire(key, int(INTEREST_TTL_S))
            pipe.zadd(PROCESSES_KEY, {process_id: time.time() + INTEREST_TTL_S})
            pipe.publish(self.interest_channel, process_id)
            await pipe.execute()

    async def drop_interest(self, process_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(INTEREST_KEY.format(process_id=process_id))
            pipe.zrem(PROCESSES_KEY, process_id)
            pipe.publish(self.interest_channel, process_id)
            await pipe.execute()

    async def publish(self, payload: str) -> None:
        # On a connection kept for it: the hub publishes a burst every few milliseconds, one at
        # a time, and taking a pooled connection through the client's command path cost a
        # third of each publish's CPU.
        pool = self.redis.connection_pool
        if self._publisher is None:
            self._publisher = await pool.get_connection()
        try:
            await self._publisher.send_command("PUBLISH", self.data_channel, payload)
            await self._publisher.read_response()
        except BaseException:
            publisher, self._publisher = self._publisher, None
            await publisher.disconnect()
            await pool.release(publisher)
            raise

    async def wanted_symbols(self) -> set[str]:
        await self.redis.zremrangebyscore(PROCESSES_KEY, "-inf", time.time())
        process_ids = await self.redis.zrange(PROCESSES_KEY, 0, -1)
        if not process_ids:
            return set()
        keys = [INTEREST_KEY.format(process_id=pid) for pid in process_ids]
        return set(await self.redis.sunion(keys))

    async def wait_interest_change(self, timeout: float) -> None:
        if self._interest_pubsub is None:
            self._interest_pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            await self._interest_pubsub.subscribe(self.interest_channel)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if await self._interest_pubsub.get_message(timeout=left) is not None:
                # Drain a burst of changes so one recomputation covers them all.
                while await self._interest_pubsub.get_message(timeout=0) is not None:
                    pass
                return

    async def claim_connection(self, user_id: int, lease_id: str, limit: int) -> bool:
        now = time.time()
        claimed = await self._claim_connection(
            keys=[CONNECTIONS_KEY.format(user_id=user_id)],
            args=[now, now + INTEREST_TTL_S, limit, lease_id, int(INTEREST_TTL_S) + 1],
        )
        return bool(claimed)

    async def renew_connections(self, leases: list[tuple[int, str]]) -> None:
        if not leases:
            return
        expiry = time.time() + INTEREST_TTL_S
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id, lease_id in leases:
                key = CONNECTIONS_KEY.format(user_id=user_id)
                pipe.zadd(key, {lease_id: expiry}, xx=True)
                pipe.expire(key, int(INTEREST_TTL_S) + 1)
            await pipe.execute()

    async def release_connection(self, user_id: int, lease_id: str) -> None:
        await self.redis.zrem(CONNECTIONS_KEY.format(user_id=user_id), lease_id)

    async def close(self) -> None:
        if self._interest_pubsub is not None:
            await self._interest_pubsub.aclose()
        if self._publisher is not None:
            await self.redis.connection_pool.release(self._publisher)
            self._publisher = None
        await self.redis.aclose()


def transport_for(redis_url: str) -> Transport:
    return RedisTransport(redis_url) if redis_url else MemoryTransport()
