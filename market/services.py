"""Market data for the desk: one source for the whole deployment (settings say which)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from tradedesk.broker import market_data_broker
from tradedesk.broker.types import Bar, Quote, Trade

# A US ticker (AAPL, BRK.B); match it with fullmatch.
SYMBOL_RE = re.compile(r"[A-Z]{1,5}(\.[A-Z]{1,2})?")
MAX_SYMBOLS_PER_REQUEST = 100


def parse_symbols(raw: str, *, limit: int = MAX_SYMBOLS_PER_REQUEST) -> list[str]:
    """A comma-separated symbol list, upper-cased and de-duplicated; ValueError if bad."""
    symbols = list(dict.fromkeys(s.strip().upper() for s in raw.split(",") if s.strip()))
    if not symbols:
        raise ValueError("Give at least one symbol.")
    if len(symbols) > limit:
        raise ValueError(f"At most {limit} symbols.")
    bad = [s for s in symbols if not SYMBOL_RE.fullmatch(s)]
    if bad:
        raise ValueError(f"Not a valid symbol: {', '.join(bad[:5])}.")
    return symbols


def latest_quotes(symbols: Iterable[str]) -> dict[str, Quote]:
    return market_data_broker().get_latest_quotes(symbols)


def latest_trades(symbols: Iterable[str]) -> dict[str, Trade]:
    return market_data_broker().get_latest_trades(symbols)


def bars(symbol: str, timeframe: str, start: datetime, end: datetime | None) -> list[Bar]:
    return market_data_broker().get_bars(symbol, timeframe, start, end)
