"""The paper exchange's simulated market: a pure function of (seed, symbol, time).

Every process that asks for AAPL's quote at the same instant gets the same answer, with
no shared state: prices are layered value noise (octaves from a week down to seconds,
each with a volatility that scales with the square root of its period, like a random walk)
around the symbol's reference price. Quotes change once per second.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from django.conf import settings

from tradedesk.broker.types import Bar, Quote, Trade

from .universe import REFERENCE_PRICES

_MASK64 = (1 << 64) - 1
# About 30% annualised volatility: per-second sigma of a 6.5-hour session's 2% daily move.
_SIGMA_PER_SECOND = 0.02 / math.sqrt(23_400)
_OCTAVES = (604_800, 86_400, 14_400, 3_600, 900, 300, 60, 15, 5)
_CENT = Decimal("0.01")
_SUBPENNY = Decimal("0.0001")


def _mix(value: int) -> int:
    """splitmix64: a fast, well-spread integer hash."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


@lru_cache(maxsize=4096)
def _symbol_key(symbol: str, seed: int) -> int:
    key = seed & _MASK64
    for char in symbol.encode():
        key = _mix(key ^ char)
    return key


def _unit(key: int, *parts: int) -> float:
    """A deterministic number in [-1, 1) for the given integers."""
    for part in parts:
        key = _mix(key ^ (part & _MASK64))
    return (key >> 11) / float(1 << 52) - 1.0


def _log_offset(key: int, seconds: float) -> float:
    total = 0.0
    for octave, period in enumerate(_OCTAVES):
        position = seconds / period
        cell = math.floor(position)
        frac = position - cell
        smooth = frac * frac * (3 - 2 * frac)
        left = _unit(key, octave, cell)
        right = _unit(key, octave, cell + 1)
        total += (left + (right - left) * smooth) * _SIGMA_PER_SECOND * math.sqrt(period)
    return total


def _round_price(value: float) -> Decimal:
    step = _CENT if value >= 1 else _SUBPENNY
    return Decimal(repr(value)).quantize(step, rounding=ROUND_HALF_UP)


def _seconds(at: datetime) -> float:
    return at.timestamp()


def is_known(symbol: str) -> bool:
    return symbol in REFERENCE_PRICES


def mid_price(symbol: str, at: datetime) -> float:
    key = _symbol_key(symbol, settings.TRADEDESK_SIM_SEED)
    return float(REFERENCE_PRICES[symbol]) * math.exp(_log_offset(key, _seconds(at)))


def _second(at: datetime) -> datetime:
    return at.replace(microsecond=0)


def quote(symbol: str, at: datetime) -> Quote:
    """The best bid and offer in force at `at` (quotes change on the second)."""
    return _quote_in_second(symbol, _second(at), settings.TRADEDESK_SIM_SEED)


# A pure function of its arguments, asked for again and again within a second (a feed at
# 1,000 quotes/s over 50 symbols asks 20 times a second for each): computed once.
@lru_cache(maxsize=4096)
def _quote_in_second(symbol: str, tick: datetime, seed: int) -> Quote:
    seconds = int(tick.timestamp())
    key = _symbol_key(symbol, seed)
    mid = mid_price(symbol, tick)
    # Spread of 1-5 basis points, at least a cent (a hundredth of a cent below $1).
    half_spread = max(mid * (1 + 2 * (_unit(key, 101, seconds) + 1)) / 20_000, 0.005)
    if mid < 1:
        half_spread = max(mid * 0.0005, 0.00005)
    bid = _round_price(mid - half_spread)
    ask = _round_price(mid + half_spread)
    if ask <= bid:
        ask = bid + (_CENT if bid >= 1 else _SUBPENNY)
    return Quote(
        symbol=symbol,
        bid_price=bid,
        bid_size=Decimal(100 * (1 + int((_unit(key, 102, seconds) + 1) * 4.5))),
        ask_price=ask,
        ask_size=Decimal(100 * (1 + int((_unit(key, 103, seconds) + 1) * 4.5))),
        timestamp=tick,
    )


def trade(symbol: str, at: datetime) -> Trade:
    """The last trade at `at`: on the bid or the ask of that second's quote."""
    return _trade_in_second(symbol, _second(at), settings.TRADEDESK_SIM_SEED)


# Like the quote, asked for again within the second: an order's checks and its answer price
# every position of the account.
@lru_cache(maxsize=4096)
def _trade_in_second(symbol: str, tick: datetime, seed: int) -> Trade:
    current = _quote_in_second(symbol, tick, seed)
    seconds = int(current.timestamp.timestamp())
    key = _symbol_key(symbol, seed)
    on_ask = _unit(key, 104, seconds) >= 0
    return Trade(
        symbol=symbol,
        price=current.ask_price if on_ask else current.bid_price,
        size=Decimal(1 + int((_unit(key, 105, seconds) + 1) * 250)),
        timestamp=current.timestamp,
    )


_TIMEFRAME_SECONDS = {"1Min": 60, "1Hour": 3_600, "1Day": 86_400}
_SAMPLES_PER_BAR = 12
# Spans are sampled on the same 5-second grid a minute bar uses.
_SPAN_STEP_SECONDS = 5


def _summary(symbol: str, instants: list[datetime]) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """Open, high, low and close of the mid price sampled at `instants`."""
    samples = [mid_price(symbol, at) for at in instants]
    return (
        _round_price(samples[0]),
        _round_price(max(samples)),
        _round_price(min(samples)),
        _round_price(samples[-1]),
    )


def bar(symbol: str, start: datetime, timeframe: str = "1Min") -> Bar:
    """The bar that opens at `start` (sampled at evenly spaced instants inside it)."""
    length = _TIMEFRAME_SECONDS[timeframe]
    step = length / _SAMPLES_PER_BAR
    instants = [start + timedelta(seconds=step * i) for i in range(_SAMPLES_PER_BAR + 1)]
    open_, high, low, close = _summary(symbol, instants)
    key = _symbol_key(symbol, settings.TRADEDESK_SIM_SEED)
    minutes = max(1, length // 60)
    volume = int((_unit(key, 106, int(start.timestamp())) + 1.5) * 2_000 * minutes)
    return Bar(
        symbol=symbol,
        timestamp=start,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=Decimal(volume),
    )


def span(symbol: str, start: datetime, end: datetime) -> tuple[Decimal, Decimal, Decimal]:
    """Open, high and low of the price over [start, end]: how far the market went meanwhile."""
    seconds = max(0.0, (end - start).total_seconds())
    steps = int(seconds // _SPAN_STEP_SECONDS)
    instants = [start + timedelta(seconds=_SPAN_STEP_SECONDS * i) for i in range(steps + 1)]
    if instants[-1] < end:
        instants.append(end)
    open_, high, low, _close = _summary(symbol, instants)
    return open_, high, low


def auction_price(symbol: str, at: datetime) -> Decimal:
    """The opening or closing auction's single price at `at`."""
    return _round_price(mid_price(symbol, at))


def bar_starts(timeframe: str, start: datetime, end: datetime) -> list[datetime]:
    """Bar open times in [start, end), aligned to the timeframe in UTC."""
    length = _TIMEFRAME_SECONDS[timeframe]
    first = math.ceil(start.timestamp() / length) * length
    last = end.timestamp()
    return [datetime.fromtimestamp(t, tz=UTC) for t in range(int(first), int(last), length)]
