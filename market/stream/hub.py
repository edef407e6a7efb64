"""The hub: the deployment's one upstream market-data connection, published once.

It subscribes upstream to the union of what every web process's connections want, publishes
each upstream message once through the transport, and turns upstream trouble into `status`
messages (clients keep their sockets; the hub reconnects with backoff and resubscribes).

Messages are published in batches: an upstream burst (a tick of the paper feed, a frame of
Alpaca's) leaves as one payload, and so does whatever arrives within PUBLISH_EVERY_S of the
previous publish, so a Redis command, and its parsing in every web process, is paid at most
once per PUBLISH_EVERY_S, not per message nor per burst.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from django.core.cache import cache

from tradedesk.broker import market_data_stream
from tradedesk.broker.base import (
    FeedStatusHandler,
    MarketDataHandler,
    MarketDataStream,
    SymbolsRefusedHandler,
)
from tradedesk.broker.types import Bar, Quote, Trade

from .messages import envelope, error_message, market_envelope, status_message
from .transport import HEARTBEAT_S, Transport, batch

logger = logging.getLogger(__name__)

StreamFactory = Callable[
    [MarketDataHandler, FeedStatusHandler, SymbolsRefusedHandler], MarketDataStream
]
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
# The hub's last feed status, for /healthz (which must not ask the provider on every hit).
# Refreshed every heartbeat; a hub that stops refreshing it is gone when it expires.
FEED_STATUS_KEY = "market:feed-status"
FEED_STATUS_TTL_S = 3 * HEARTBEAT_S
IDLE = "idle"  # the hub runs; the upstream has not reported (no symbol wanted yet)
# At 1,000 quotes/s the paper feed bursts every 5 ms; a publish (~80 µs of CPU here, and the
# same again in every web process) per burst was most of the hub's cost. A quarter of the web's
# flush window (STREAM_FLUSH_MS, 40) is what a message may wait for the next publish.
PUBLISH_EVERY_S = 0.010


def upstream_factory(
    *, quotes_per_second: float | None = None, trades_per_second: float | None = None
) -> StreamFactory:
    """The deployment's upstream, as the broker factory builds it (MARKET_DATA_PROVIDER);
    the rates apply to the paper exchange's feed only."""
    return functools.partial(
        market_data_stream, quotes_per_second=quotes_per_second, trades_per_second=trades_per_second
    )


def feed_status() -> dict | None:
    """The running hub's last feed status ({state, detail, at, reconnects}), None if no hub
    reports."""
    return cache.get(FEED_STATUS_KEY)


class Hub:
    def __init__(self, transport: Transport, stream_factory: StreamFactory) -> None:
        self.transport = transport
        self.upstream = stream_factory(self._on_data, self._on_status, self._on_refused)
        self.symbols: set[str] = set()
        self._state = ""
        self._detail = ""
        self.reconnects = 0  # upstream failures retried, in the status record for /metrics
        self._unpublished: list[str] = []
        self._publishing: asyncio.Task | None = None
        self._publish_failing = False
        self._published_at = -PUBLISH_EVERY_S  # loop time of the last publish

    async def run(self) -> None:
        helpers = [
            asyncio.create_task(self._follow_interest()),
            asyncio.create_task(self._keep_status_record()),
        ]
        try:
            await self._run_upstream()
        finally:
            for helper in helpers:
                helper.cancel()
            for helper in helpers:
                with contextlib.suppress(asyncio.CancelledError):
                    await helper
            with contextlib.suppress(Exception):
                await cache.adelete(FEED_STATUS_KEY)
            await self.upstream.stop()
            if self._publishing is not None:
                await self._publishing  # what the upstream delivered still goes out

    async def stop(self) -> None:
        """End run() from outside by ending the upstream's loop: a cancellation alone was seen
        to be lost inside the fixed-rate feed's loop, and the process then ignored SIGTERM."""
        await self.upstream.stop()

    async def _run_upstream(self) -> None:
        backoff = BACKOFF_FIRST_S
        while True:
            await self.upstream.set_symbols(set(self.symbols))
            try:
                await self.upstream.run()
                return  # stop() was called
            except asyncio.CancelledError:
                raise
            except Exception as error:  # any upstream failure: report, back off, reconnect
                logger.warning("upstream market data failed: %s; retry in %.1fs", error, backoff)
                self.reconnects += 1
                await self._on_status("down", f"upstream failed: {error}; reconnecting")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _follow_interest(self) -> None:
        while True:
            try:
                wanted = await self.transport.wanted_symbols()
                if wanted != self.symbols:
                    self.symbols = wanted
                    await self.upstream.set_symbols(set(wanted))
                await self.transport.wait_interest_change(HEARTBEAT_S)
            except asyncio.CancelledError:
                raise
            except Exception:  # the transport hiccuped: keep the last union, try again
                logger.exception("could not read stream interest")
                await asyncio.sleep(1)

    async def _keep_status_record(self) -> None:
        while True:
            await self._record_status()
            await asyncio.sleep(HEARTBEAT_S)

    async def _record_status(self) -> None:
        record = {
            "state": self._state or IDLE,
            "detail": self._detail,
            "at": datetime.now(UTC).isoformat(),
            "reconnects": self.reconnects,
        }
        try:
            await cache.aset(FEED_STATUS_KEY, record, FEED_STATUS_TTL_S)
        except Exception as error:  # the health record is best effort; the feed goes on
            logger.warning("could not record the feed status: %s", error)

    async def _on_data(self, item: Quote | Trade | Bar) -> None:
        self._publish(market_envelope(item))

    async def _on_status(self, state: str, detail: str) -> None:
        # Publish transitions only: an upstream that reports "down" every retry stays one message.
        if state == self._state:
            return
        self._state, self._detail = state, detail
        self._publish(envelope(status_message(state, detail)))
        await self._record_status()

    async def _on_refused(self, symbols: set[str], reason: str) -> None:
        """The provider refused these symbols: their subscribers get an `error` each."""
        for symbol in sorted(symbols):
            message = error_message(
                "symbol_refused",
                f"The market-data feed refused {symbol} ({reason}); unsubscribe and "
                "subscribe again to retry.",
            )
            self._publish(envelope({**message, "symbol": symbol}))

    def _publish(self, message_envelope: str) -> None:
        """Queue a message for the next batch; start publishing if nothing is under way."""
        self._unpublished.append(message_envelope)
        if self._publishing is None:
            self._publishing = asyncio.create_task(self._publish_pending())

    async def _publish_pending(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._unpublished:
                if (wait := self._published_at + PUBLISH_EVERY_S - loop.time()) > 0:
                    await asyncio.sleep(wait)  # what arrives meanwhile joins this payload
                self._published_at = loop.time()
                pending, self._unpublished = self._unpublished, []
                try:
                    await self.transport.publish(batch(pending))
                except Exception as error:  # the relays notice the gap when they resubscribe
                    if not self._publish_failing:
                        logger.warning("could not publish market data (%s); dropping it", error)
                    self._publish_failing = True
                else:
                    self._publish_failing = False
        finally:
            self._publishing = None
