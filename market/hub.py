"""The hub: the deployment's one upstream market-data connection, published once.

It subscribes upstream to the union of what every web process's connections want, publishes
each upstream message once through the transport, and turns upstream trouble into `status`
messages (clients keep their sockets; the hub reconnects with backoff and resubscribes).

Messages are published in batches: what arrives while the previous publish is under way (an
upstream burst — a tick of the paper feed, a frame of Alpaca's) leaves as one payload, so a
Redis command, and its parsing in every web process, is paid per burst, not per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from django.conf import settings

from tradedesk.broker.base import FeedStatusHandler, MarketDataHandler, MarketDataStream
from tradedesk.broker.types import Bar, Quote, Trade

from .messages import envelope, market_message, status_message
from .transport import HEARTBEAT_S, Transport, batch

logger = logging.getLogger(__name__)

StreamFactory = Callable[[MarketDataHandler, FeedStatusHandler], MarketDataStream]
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0


def upstream_factory(
    *, quotes_per_second: float | None = None, trades_per_second: float | None = None
) -> StreamFactory:
    """The configured upstream (settings.MARKET_DATA_PROVIDER): the paper exchange or Alpaca.

    The paper exchange's fixed rates default to settings.SIM_STREAM_*_PER_SECOND.
    """
    if settings.MARKET_DATA_PROVIDER == "alpaca":
        from tradedesk.broker.alpaca import AlpacaMarketDataStream

        return AlpacaMarketDataStream
    from tradedesk.broker.sim.stream import SimMarketDataStream

    quotes = (
        settings.SIM_STREAM_QUOTES_PER_SECOND if quotes_per_second is None else quotes_per_second
    )
    trades = (
        settings.SIM_STREAM_TRADES_PER_SECOND if trades_per_second is None else trades_per_second
    )
    return lambda on_data, on_status: SimMarketDataStream(
        on_data, on_status, quotes_per_second=quotes, trades_per_second=trades
    )


class Hub:
    def __init__(self, transport: Transport, stream_factory: StreamFactory) -> None:
        self.transport = transport
        self.upstream = stream_factory(self._on_data, self._on_status)
        self.symbols: set[str] = set()
        self._state = ""
        self._unpublished: list[str] = []
        self._publishing: asyncio.Task | None = None
        self._publish_failing = False

    async def run(self) -> None:
        follower = asyncio.create_task(self._follow_interest())
        try:
            await self._run_upstream()
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
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

    async def _on_data(self, item: Quote | Trade | Bar) -> None:
        self._publish(envelope(market_message(item)))

    async def _on_status(self, state: str, detail: str) -> None:
        # Publish transitions only: an upstream that reports "down" every retry stays one message.
        if state == self._state:
            return
        self._state = state
        self._publish(envelope(status_message(state, detail)))

    def _publish(self, message_envelope: str) -> None:
        """Queue a message for the next batch; start publishing if nothing is under way."""
        self._unpublished.append(message_envelope)
        if self._publishing is None:
            self._publishing = asyncio.create_task(self._publish_pending())

    async def _publish_pending(self) -> None:
        try:
            while self._unpublished:
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
