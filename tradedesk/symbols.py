"""US ticker symbols as the desk accepts them (every app and the broker layer may use this)."""

from __future__ import annotations

import re

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
