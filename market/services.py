"""Market data for the desk: one source for the whole deployment (settings say which)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from tradedesk.broker import market_data_broker
from tradedesk.broker.types import Bar, Quote, Trade


# The JSON shapes of a quote and a bar: the REST answers and the stream frames share them.
def quote_json(quote) -> dict:
    return {
        "symbol": quote.symbol,
        "bid_price": str(quote.bid_price),
        "bid_size": str(quote.bid_size),
        "ask_price": str(quote.ask_price),
        "ask_size": str(quote.ask_size),
        "timestamp": quote.timestamp.isoformat(),
    }


def bar_json(bar) -> dict:
    return {
        "timestamp": bar.timestamp.isoformat(),
        "open": str(bar.open),
        "high": str(bar.high),
        "low": str(bar.low),
        "close": str(bar.close),
        "volume": str(bar.volume),
    }


def latest_quotes(symbols: Iterable[str]) -> dict[str, Quote]:
    return market_data_broker().get_latest_quotes(symbols)


def latest_trades(symbols: Iterable[str]) -> dict[str, Trade]:
    return market_data_broker().get_latest_trades(symbols)


def bars(symbol: str, timeframe: str, start: datetime, end: datetime | None) -> list[Bar]:
    return market_data_broker().get_bars(symbol, timeframe, start, end)
