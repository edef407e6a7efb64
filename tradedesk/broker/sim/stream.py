"""The paper exchange's market-data stream: the simulated market, delivered as it happens.

Each second, for every subscribed symbol: its quote when it changed, its trade, and at each
minute boundary the bar that just closed. A benchmark can instead ask for fixed rates of
quotes and trades spread over the symbols (stamped with the instant they are sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
from datetime import UTC, datetime, timedelta

from tradedesk.broker.base import (
    FeedStatusHandler,
    MarketDataHandler,
    MarketDataStream,
    SymbolsRefusedHandler,
)
from tradedesk.broker.types import Quote

from . import market

RATE_TICK_S = 0.005


def _now() -> datetime:
    return datetime.now(UTC)


class SimMarketDataStream(MarketDataStream):
    def __init__(
        self,
        on_data: MarketDataHandler,
        on_status: FeedStatusHandler,
        on_refused: SymbolsRefusedHandler | None = None,
        *,
        quotes_per_second: float = 0,
        trades_per_second: float = 0,
    ):
        super().__init__(on_data, on_status, on_refused)
        self.quotes_per_second = quotes_per_second
        self.trades_per_second = trades_per_second
        self._symbols: list[str] = []
        self._last_quotes: dict[str, Quote] = {}
        self._stopped = False
        self._wake = asyncio.Event()

    async def set_symbols(self, symbols: set[str]) -> None:
        self._symbols = sorted(s for s in symbols if market.is_known(s))
        self._last_quotes = {s: q for s, q in self._last_quotes.items() if s in symbols}
        self._wake.set()

    async def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    async def run(self) -> None:
        self._stopped = False
        await self.on_status("up", "paper exchange simulated feed")
        if self.quotes_per_second or self.trades_per_second:
            await self._run_at_rates()
        else:
            await self._run_each_second()

    async def _wait(self, seconds: float) -> None:
        """Sleep, but wake early when stopped or when the symbols change."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    async def _run_each_second(self) -> None:
        last_tick: datetime | None = None
        while not self._stopped:
            now = _now()
            minute = now.replace(second=0, microsecond=0)
            closed_bar = last_tick is not None and last_tick < minute
            for symbol in self._symbols:
                current = market.quote(symbol, now)
                previous = self._last_quotes.get(symbol)
                if previous != current:
                    self._last_quotes[symbol] = current
                    await self.on_data(current)
                # One trade per second (a wake-up for new symbols must not repeat it).
                if previous is None or previous.timestamp != current.timestamp:
                    await self.on_data(market.trade(symbol, now))
                if closed_bar:
                    await self.on_data(market.bar(symbol, minute - timedelta(minutes=1)))
            last_tick = now
            await self._wait(1 - now.microsecond / 1_000_000)

    async def _run_at_rates(self) -> None:
        started = asyncio.get_running_loop().time()
        quotes_sent = trades_sent = 0
        quote_turn, trade_turn = itertools.count(), itertools.count()
        while not self._stopped:
            elapsed = asyncio.get_running_loop().time() - started
            symbols = self._symbols
            if symbols:
                quotes_sent = await self._send_due(
                    market.quote, symbols, quote_turn, quotes_sent, elapsed * self.quotes_per_second
                )
                trades_sent = await self._send_due(
                    market.trade, symbols, trade_turn, trades_sent, elapsed * self.trades_per_second
                )
            else:
                quotes_sent = int(elapsed * self.quotes_per_second)
                trades_sent = int(elapsed * self.trades_per_second)
            await self._wait(RATE_TICK_S)

    async def _send_due(self, make, symbols: list[str], turn, sent: int, due: float) -> int:
        """Send what the rate owes by now (`make(symbol, at)`, round the symbols); the new count."""
        while sent < due:
            symbol = symbols[next(turn) % len(symbols)]
            now = _now()
            await self.on_data(dataclasses.replace(make(symbol, now), timestamp=now))
            sent += 1
        return sent
