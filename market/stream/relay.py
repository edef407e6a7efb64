"""The relay, one per web process: each published message once, to the local connections.

An in-process registry (symbol → connections) replaces a channel-layer message per consumer
per quote. Quotes are conflated (latest per symbol wins): the relay keeps each symbol's latest
once, and a connection's frame carries those that changed since its last frame. Trades, bars,
orders and status queue per connection, in order. A frame leaves at most every STREAM_FLUSH_MS
— at once when the connection was idle. A slow connection's queue is bounded: overflow drops
its oldest trades and bars (it is told how many), and one that stays over the limit is closed
with 1013. Under daphne a connection whose socket is backed up (market.stream.daphne_socket) is sent
nothing until it drains, so its messages wait, and are bounded, here.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import math
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable

from django.conf import settings

from tradedesk import metrics

from .daphne_socket import SendBuffer
from .messages import ERROR_KIND, STATUS_KIND, dumps, frame, status_message
from .transport import HEARTBEAT_S, SUBSCRIBED, Transport, open_batch, transport_for

logger = logging.getLogger(__name__)

CLOSE_TRY_AGAIN_LATER = 1013
RECONNECT_S = 1.0
# The market kinds a connection queues (and may drop on overflow), and the stream each is in;
# orders, status and replies queue too but are never dropped.
STREAM_OF_KIND = {"trade": "trades", "bar": "bars"}


class Connection:
    """One client's subscription and pending messages; its frames leave through the relay's
    FlushScheduler (one per process), not a task of its own."""

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        close: Callable[[int], Awaitable[None]],
        *,
        streams: set[str],
        flush_s: float,
        queue_limit: int,
        slow_close_s: float,
        send_buffer: SendBuffer | None = None,
        write: Callable[[str], None] | None = None,
    ) -> None:
        self._send = send
        # The server's own framing call (daphne_socket.frame_writer): a frame is written in the
        # scheduler's turn, no await. None: frames go through `send`, one at a time.
        self._write = write
        self._sending: asyncio.Task | None = None
        self._send_buffer = send_buffer  # None: not known, never considered backed up
        self._close = close
        self.streams = set(streams)
        self.symbols: set[str] = set()
        self.flush_s = flush_s
        self.queue_limit = queue_limit
        self.slow_close_s = slow_close_s
        self.relay: Relay | None = None
        self._quotes_seen: dict[str, int] = {}  # symbol → the relay's version last sent
        self._queue: deque[tuple[bool, str]] = deque()
        self._dropped = 0
        self._pongs_waiting = 0  # WebSocket pings unanswered while the client is not reading
        self._over_limit_since: float | None = None
        # (user id, lease id) in the per-user connection count, renewed by the relay.
        self.lease: tuple[int, str] | None = None
        self.started = False
        self.scheduled = False  # waiting in the scheduler for its turn
        self.last_sent = -math.inf  # the event loop's time of the last frame
        self.closed = False

    @classmethod
    def from_settings(
        cls,
        send,
        close,
        *,
        streams: set[str],
        send_buffer: SendBuffer | None,
        write: Callable[[str], None] | None = None,
    ) -> Connection:
        return cls(
            send,
            close,
            streams=streams,
            flush_s=settings.STREAM_FLUSH_MS / 1000,
            queue_limit=settings.STREAM_QUEUE_LIMIT,
            slow_close_s=settings.STREAM_SLOW_CLOSE_S,
            send_buffer=send_buffer,
            write=write,
        )

    def start(self) -> None:
        """Attached and subscribed: what is pending (the subscription) leaves at once."""
        self.started = True
        self.wake()

    async def stop(self) -> None:
        self.closed = True
        if self._sending is not None and self._sending is not asyncio.current_task():
            self._sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sending

    # --- filling ---------------------------------------------------------
    def wake(self) -> None:
        """Something to send: a frame at the connection's next turn."""
        if self.started and not self.closed:
            self.relay.scheduler.schedule(self)

    def push_market(self, kind: str, body: str) -> None:
        if STREAM_OF_KIND[kind] in self.streams:
            self._enqueue(body, droppable=True)

    def push(self, message: dict) -> None:
        """A message that is never conflated nor dropped (order, status, reply)."""
        self._enqueue(dumps(message), droppable=False)

    def push_text(self, body: str) -> None:
        self._enqueue(body, droppable=False)

    def _enqueue(self, body: str, *, droppable: bool) -> None:
        if self.closed:
            return
        self._queue.append((droppable, body))
        if len(self._queue) > self.queue_limit:
            self._drop_oldest()
        self.wake()

    def count_ping(self) -> None:
        """A WebSocket ping: its pong counts against the queue like any frame while the client
        is not reading (daphne_socket holds back all but the latest pong meanwhile)."""
        if self.closed or self._send_buffer is None or not self._send_buffer.full:
            return
        self._pongs_waiting += 1
        if len(self._queue) + self._pongs_waiting > self.queue_limit:
            self._note_over_limit()

    def _drop_oldest(self) -> None:
        for index, (droppable, _) in enumerate(self._queue):
            if droppable:
                del self._queue[index]
                self._dropped += 1
                break
        self._note_over_limit()

    def _note_over_limit(self) -> None:
        """Over the queue limit: the slow-client clock runs, and at STREAM_SLOW_CLOSE_S, 1013."""
        now = time.monotonic()
        if self._over_limit_since is None:
            self._over_limit_since = now
        elif now - self._over_limit_since >= self.slow_close_s:
            logger.info("closing a stream client that stayed over its queue limit")
            metrics.STREAM_SLOW_CLOSES.inc()
            self.closed = True
            asyncio.get_running_loop().create_task(self._close(CLOSE_TRY_AGAIN_LATER))

    # --- draining --------------------------------------------------------
    def forget_quote(self, symbol: str) -> None:
        self._quotes_seen.pop(symbol, None)

    def take(self) -> list[str]:
        """Everything pending, in frame order; resets the slow-client clock."""
        bodies = []
        if self._dropped:
            lagging = status_message(
                "lagging",
                "this connection reads too slowly; its oldest trades and bars were dropped",
                dropped=self._dropped,
            )
            bodies.append(dumps(lagging))
            metrics.STREAM_LAGGING.labels(reason="slow_client").inc()
            self._dropped = 0
        if self._queue:
            bodies.extend(body for _, body in self._queue)
            self._queue.clear()
        if self.relay is not None and "quotes" in self.streams:
            # The symbols whose latest quote (held once, by the relay) this connection has not
            # sent, in symbol order.
            versions, latest, seen = (
                self.relay.quote_versions,
                self.relay.latest_quotes,
                self._quotes_seen,
            )
            for symbol in sorted(self.symbols):
                version = versions.get(symbol)
                if version is not None and version != seen.get(symbol):
                    bodies.append(latest[symbol])
                    seen[symbol] = version
        self._over_limit_since = None
        self._pongs_waiting = 0
        return bodies

    def flush(self, now: float) -> None:
        """The connection's turn (FlushScheduler): what is pending leaves as one frame."""
        self.scheduled = False
        if self.closed or self._sending is not None:
            return  # a frame still on its way through `send` wakes us when it is gone
        if self._send_buffer is not None and self._send_buffer.full:
            # The client is not reading: what it would be sent waits in the bounded queue
            # (overflow, lagging, 1013) and leaves as one frame once the socket drains.
            self._send_buffer.on_drained = self.wake
            return
        bodies = self.take()
        if bodies:
            self.last_sent = now
            if self._write is not None:
                self._write(frame(bodies))
            else:
                self._sending = asyncio.get_running_loop().create_task(self._send(frame(bodies)))
                self._sending.add_done_callback(self._sent)
        if bodies:
            # Busy: most likely more by its next turn, so it takes that turn (rather than
            # registering with each of its symbols to be woken, and being woken by each).
            self.wake()
        elif "quotes" in self.streams:
            # Idle: the next quote of any of its symbols wakes it.
            self.relay.wake_on_quote(self)

    def _sent(self, task: asyncio.Task) -> None:
        self._sending = None
        if not task.cancelled() and task.exception() is not None:
            logger.warning("a stream frame could not be sent: %s", task.exception())
        self.wake()


# The scheduler's clock: turns fall on a grid, so connections due about the same time share one.
TICK_S = 0.005
# Overload: a turn later than LATE (in flush windows) widens every connection's window (x1.5,
# at most MAX_STRETCH); each turn within ON_TIME narrows it back (/1.25) to the configured one.
LATE_FLUSH_WINDOWS, ON_TIME_FLUSH_WINDOWS, MAX_STRETCH = 1.0, 0.25, 8.0


class FlushScheduler:
    """Every connection's frames in one process, from one timer: no task per connection.

    A woken connection's turn is at once when its last frame is a flush window old (or it
    never sent one), else when it is; turns are gathered on a TICK_S grid and run together.
    When the process falls behind (its turns come late), the flush window is stretched for
    everyone, so frames carry more per frame and cost less per message, and clients are told
    with a `lagging` status; when it catches up the window shrinks back and they are told.
    """

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.stretch = 1.0
        self._due: list[Connection] = []
        self._soon: asyncio.Handle | None = None
        self._timers: list[tuple[float, int, Connection]] = []  # a heap by turn
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def schedule(self, connection: Connection) -> None:
        if connection.scheduled:
            return
        connection.scheduled = True
        loop = asyncio.get_running_loop()
        turn = connection.last_sent + connection.flush_s * self.stretch
        if turn <= loop.time():
            self._due.append(connection)
            if self._soon is None:
                self._soon = loop.call_soon(self._run_due)
            return
        turn = math.ceil(turn / TICK_S) * TICK_S
        heapq.heappush(self._timers, (turn, next(self._order), connection))
        if turn < self._timer_at:
            self._arm(loop, turn)

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = loop.call_at(at, self._run_timers)

    def _run_due(self) -> None:
        self._soon = None
        due, self._due = self._due, []
        now = asyncio.get_running_loop().time()
        for connection in due:
            connection.flush(now)

    def _run_timers(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._follow_lateness(now - self._timer_at)
        self._timer, self._timer_at = None, math.inf
        timers = self._timers
        while timers and timers[0][0] <= now:
            heapq.heappop(timers)[2].flush(now)
        if timers:
            self._arm(loop, timers[0][0])

    def _follow_lateness(self, late_s: float) -> None:
        window = self.relay.flush_s
        if late_s > LATE_FLUSH_WINDOWS * window and self.stretch < MAX_STRETCH:
            if self.stretch == 1.0:
                logger.warning("stream turns run %.0f ms late: widening frames", late_s * 1000)
            self.stretch = min(MAX_STRETCH, self.stretch * 1.5)
            self.relay.tell_lagging(round(window * self.stretch * 1000))
        elif late_s < ON_TIME_FLUSH_WINDOWS * window and self.stretch > 1.0:
            self.stretch = max(1.0, self.stretch / 1.25)
            if self.stretch == 1.0:
                self.relay.tell_caught_up()


class Relay:
    def __init__(
        self, transport: Transport, process_id: str | None = None, *, flush_s: float | None = None
    ) -> None:
        self.transport = transport
        # The configured flush window: how late a turn may be before frames widen.
        self.flush_s = settings.STREAM_FLUSH_MS / 1000 if flush_s is None else flush_s
        self.scheduler = FlushScheduler(self)
        self.process_id = (
            process_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        )
        self.by_symbol: dict[str, set[Connection]] = {}
        self.connections: set[Connection] = set()
        # Quotes are conflated here, once per process: the latest per symbol and a version that
        # connections compare at flush time, so a quote costs the same however many want it.
        self.latest_quotes: dict[str, str] = {}
        self.quote_versions: dict[str, int] = {}
        self._next_version = itertools.count(1)
        self._idle_by_symbol: dict[str, set[Connection]] = {}
        # The feed's refusal of a symbol, told with each subscription that holds it.
        self.refused: dict[str, str] = {}
        self.feed_status: dict | None = None
        self._interest_changed = asyncio.Event()
        self._subscribed_before = False

    async def run(self) -> None:
        keepers = [
            asyncio.create_task(self._keep_interest()),
            asyncio.create_task(self._keep_leases()),
        ]
        try:
            while True:
                try:
                    async for payload in self.transport.messages():
                        if payload == SUBSCRIBED:
                            self._on_subscribed()
                        else:
                            self.dispatch(payload)
                except Exception as error:  # lost the transport: tell clients, keep their sockets
                    logger.warning("stream relay lost its transport: %s", error)
                    # Not the feed's state (feed_status): the relay's own, until it resubscribes.
                    self._tell_everyone(status_message("down", "market data relay reconnecting"))
                    await asyncio.sleep(RECONNECT_S)
        finally:
            for keeper in keepers:
                keeper.cancel()
            for keeper in keepers:
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper

    def _on_subscribed(self) -> None:
        """A subscription after the first: what was published in between never reached us."""
        if self._subscribed_before:
            logger.warning("stream relay resubscribed; messages published meanwhile were missed")
            state = self.feed_status["state"] if self.feed_status else "up"
            self._tell_everyone(
                status_message(state, "market data relay resubscribed; some messages were missed")
            )
        self._subscribed_before = True

    def tell_lagging(self, flush_ms: int) -> None:
        metrics.STREAM_LAGGING.labels(reason="server_behind").inc()
        self._tell_everyone(
            status_message(
                "lagging",
                f"this server is behind; frames leave every {flush_ms} ms until it catches up",
                flush_ms=flush_ms,
            )
        )

    def tell_caught_up(self) -> None:
        state = self.feed_status["state"] if self.feed_status else "up"
        flush_ms = round(self.flush_s * 1000)
        self._tell_everyone(
            status_message(state, f"this server caught up; frames every {flush_ms} ms again")
        )

    def _tell_everyone(self, message: dict) -> None:
        body = dumps(message)
        for connection in self.connections:
            connection.push_text(body)

    def dispatch(self, payload: str) -> None:
        """Hand each message of a published batch to the connections that want it."""
        for kind, symbol, body in open_batch(payload):
            if kind == "quote":
                if symbol in self.by_symbol:
                    self.latest_quotes[symbol] = body
                    self.quote_versions[symbol] = next(self._next_version)
                    for connection in self._idle_by_symbol.pop(symbol, ()):
                        connection.wake()
            elif kind == STATUS_KIND:
                self.feed_status = json.loads(body)
                for connection in self.connections:
                    connection.push_text(body)
            elif kind == ERROR_KIND:
                if symbol in self.by_symbol:
                    self.refused[symbol] = body
                for connection in self.by_symbol.get(symbol, ()):
                    connection.push_text(body)
            else:
                for connection in self.by_symbol.get(symbol, ()):
                    connection.push_market(kind, body)

    def wake_on_quote(self, connection: Connection) -> None:
        """An idle connection waits for the next quote of any of its symbols."""
        for symbol in connection.symbols:
            self._idle_by_symbol.setdefault(symbol, set()).add(connection)

    # --- the registry ----------------------------------------------------
    def attach(self, connection: Connection) -> None:
        connection.relay = self
        self.connections.add(connection)
        metrics.STREAM_CONNECTIONS.inc()
        if self.feed_status is not None and self.feed_status["state"] != "up":
            connection.push(self.feed_status)

    def subscribe(self, connection: Connection, symbols: set[str]) -> None:
        for symbol in symbols - connection.symbols:
            subscribers = self.by_symbol.setdefault(symbol, set())
            if not subscribers:
                self._interest_changed.set()
            subscribers.add(connection)
        connection.symbols |= symbols
        if "quotes" in connection.streams and not symbols.isdisjoint(self.latest_quotes):
            connection.wake()  # the latest quote of a newly subscribed symbol goes out at once

    def refusals(self, symbols: set[str]) -> list[str]:
        """The feed's standing refusals (`error` bodies) of any of these symbols."""
        return [self.refused[s] for s in sorted(symbols) if s in self.refused]

    def unsubscribe(self, connection: Connection, symbols: set[str]) -> None:
        for symbol in symbols & connection.symbols:
            subscribers = self.by_symbol[symbol]
            subscribers.discard(connection)
            connection.forget_quote(symbol)
            self._idle_by_symbol.get(symbol, set()).discard(connection)
            if not subscribers:
                # The last local subscriber: release it (and forget a quote that will go stale).
                del self.by_symbol[symbol]
                self.latest_quotes.pop(symbol, None)
                self.quote_versions.pop(symbol, None)
                self.refused.pop(symbol, None)  # a later subscriber may find the feed serves it
                self._interest_changed.set()
        connection.symbols -= symbols

    def detach(self, connection: Connection) -> None:
        self.unsubscribe(connection, set(connection.symbols))
        if connection in self.connections:  # never attached when its set-up failed
            self.connections.remove(connection)
            metrics.STREAM_CONNECTIONS.dec()

    async def _keep_leases(self) -> None:
        """Renew this process's connections in the per-user count, so a crashed process's
        connections stop counting (after INTEREST_TTL_S) and live ones never do."""
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            leases = [c.lease for c in self.connections if c.lease is not None]
            try:
                await self.transport.renew_connections(leases)
            except Exception:  # the transport hiccuped; the next heartbeat retries
                logger.exception("could not renew stream connection leases")

    async def _keep_interest(self) -> None:
        """Tell the hub what this process wants: at once on change, and as a heartbeat."""
        try:
            while True:
                self._interest_changed.clear()
                try:
                    await self.transport.set_interest(self.process_id, set(self.by_symbol))
                except Exception:  # the transport hiccuped; the next heartbeat retries
                    logger.exception("could not record stream interest")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(HEARTBEAT_S):
                        await self._interest_changed.wait()
        finally:
            with contextlib.suppress(Exception):
                await self.transport.drop_interest(self.process_id)


class _ProcessStream:
    """This process's relay (and, in the embedded run, the hub), bound to one event loop."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.relay: Relay | None = None
        self.tasks: list[asyncio.Task] = []
        self.transport: Transport | None = None

    def relay_for_this_loop(self) -> Relay:
        """Started lazily on the first connection, in the running loop."""
        loop = asyncio.get_running_loop()
        if self.relay is not None and self.loop is loop:
            return self.relay
        from .hub import Hub, upstream_factory

        self.loop = loop
        self.transport = transport_for(settings.REDIS_URL)
        self.relay = Relay(self.transport)
        self.tasks = [loop.create_task(self.relay.run())]
        if not settings.REDIS_URL:
            # Embedded run: no runstream process, so the hub lives here with the relay.
            self.tasks.append(loop.create_task(Hub(self.transport, upstream_factory()).run()))
        return self.relay

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.transport is not None:
            await self.transport.close()
        self.__init__()


process_stream = _ProcessStream()
