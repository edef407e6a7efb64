"""Counting day trades from the desk's own fills.

FINRA's revised Rule 4210 and Alpaca's account payload no longer give a day-trade count, so
the desk counts its own, the way FINRA counts them (Rule 4210(f)(8)(B)(ii), Interpretation /02,
Regulatory Notice 21-13 — the examples Alpaca publishes):

- A day trade is opening and closing a position in the same symbol, in the same account, on the
  same trading day (New York calendar date, extended hours included): buying then selling, or
  selling short then buying to cover.
- Fills in a row on the same side are one transaction; a day trade is counted each time the
  direction changes from the side that opened today's shares to the side that closes them:
    buy 250, buy 250, sell 500                         = 1   (FINRA example A)
    buy 100, sell 100, buy 100, sell 100               = 2   (example B)
    buy 500, sell 100, sell 100, sell 300              = 1   (example C: closed in parts)
    buy 250, buy 300, buy 100, sell 150, sell 175      = 1   (example D)
    buy 199, buy 142, sell 1, buy 45, sell 100, sell 200 = 2 (example E)
    buy ABC, buy XYZ, sell ABC, sell XYZ               = 2   (example F: counted per symbol)
  So "buy 100, sell 50, sell 50" is ONE day trade (example C), not two.
- A position held overnight and closed before any new opening on the same side is not a day
  trade (long 100 overnight: sell 100 = 0; sell 100, buy 100, sell 100 = 1). Closing fills close
  today's shares first, so a sale after a same-day purchase always counts.
- A fill that crosses zero (long 100, sell 300) closes the long and opens a short with the rest;
  covering that short later the same day is another day trade.
- Every execution counts, partial fills included (a partial fill of an order canceled after
  it): each rise of an order's filled qty in its OrderEvents, at the event's time
  (`selectors.fills_since`); the position at the start of a day is the broker's current
  position less the desk's executions since.
- Only a fill against the position can complete a day trade, and the order is counted as
  filling after every recorded execution, i.e. against the current position: a buy while
  flat or long, or a sell while flat or short, completes none, and its count reads nothing.
- Business days are NYSE sessions; "the last 5 business days" are the trading day and the four
  sessions before it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from functools import lru_cache

import pandas as pd

from accounts.models import BrokerAccount
from tradedesk.broker.calendar import market_zone, nyse

from . import selectors

BUSINESS_DAYS = 5
ZERO = Decimal("0")


@dataclass(frozen=True)
class Fill:
    side: str  # buy | sell
    qty: Decimal


@dataclass(frozen=True)
class DayTradeCount:
    completes: bool  # whether the order would complete a day trade
    today: int  # day trades on the trading day, counting the order
    window: int  # day trades in the last BUSINESS_DAYS business days, counting the order


def _signed(fill: Fill) -> Decimal:
    return fill.qty if fill.side == "buy" else -fill.qty


def count_day_trades(fills: Iterable[Fill], start_qty: Decimal = ZERO) -> int:
    """Day trades in one symbol's fills of one day, in order, from a signed starting position."""
    position = start_qty
    opened_today = ZERO  # how much of the position (in absolute shares) was opened today
    count = 0
    run_side = None
    run_counted = False
    for fill in fills:
        if fill.qty <= 0:
            continue
        if fill.side != run_side:
            run_side, run_counted = fill.side, False
        signed = _signed(fill)
        if position != 0 and (position > 0) != (signed > 0):
            closing = min(fill.qty, abs(position))
            if opened_today > 0 and not run_counted:
                count += 1
                run_counted = True
            opened_today = max(ZERO, opened_today - closing)
            if fill.qty > closing:  # crossed zero: the rest opens the other side today
                opened_today = fill.qty - closing
        else:
            opened_today += fill.qty
        position += signed
    return count


def day_start(day: date) -> datetime:
    """Midnight in New York at the start of `day`, as an aware datetime."""
    return datetime.combine(day, time.min, tzinfo=market_zone())


def trading_day(now: datetime, *, trades_now: bool) -> date:
    """The New York date on which an order placed at `now` can first trade."""
    local_date = now.astimezone(market_zone()).date()
    if trades_now:
        return local_date
    calendar = nyse()
    session = pd.Timestamp(local_date)
    if calendar.is_session(session):
        if now < calendar.session_close(session).to_pydatetime():
            return local_date  # pre-market: it trades at today's open
        return calendar.next_session(session).date()
    return calendar.date_to_session(session, direction="next").date()


def business_days(day: date, count: int = BUSINESS_DAYS) -> list[date]:
    """`day` and the count-1 NYSE sessions before it, oldest first."""
    return list(_business_days(day, count))


@lru_cache(maxsize=256)
def _business_days(day: date, count: int) -> tuple[date, ...]:
    # Cached: every order asks, and the pandas look-up costs more than the rest of the count.
    end = pd.Timestamp(day) - pd.Timedelta(days=1)
    earlier = nyse().sessions_in_range(end - pd.Timedelta(days=7 + 2 * count), end)
    return (*(session.date() for session in earlier[-(count - 1) :]), day)


def count_with_order(
    *,
    broker_account: BrokerAccount,
    positions: Mapping[str, Decimal],
    symbol: str,
    side: str,
    qty: Decimal,
    day: date,
) -> DayTradeCount:
    """Day trades on `day` and in the business-day window, if this order filled on `day`.

    `positions` maps symbols to the account's current signed quantity (short < 0). An order
    that cannot close any of the position completes no day trade: then the counts are 0 and
    nothing is read (callers read them only when the order completes one).
    """
    held = positions.get(symbol, ZERO)
    if held == 0 or (held > 0) == (side == "buy"):
        return DayTradeCount(completes=False, today=0, window=0)
    days = business_days(day)
    zone = market_zone()
    fills_by_symbol: dict[str, list[tuple[date, Fill]]] = defaultdict(list)
    for execution in selectors.fills_since(broker_account, day_start(days[0])):
        fill_day = execution.at.astimezone(zone).date()
        fills_by_symbol[execution.symbol].append((fill_day, Fill(execution.side, execution.qty)))
    fills_by_symbol.setdefault(symbol, [])

    window = today = 0
    completes = False
    counted_days = set(days)
    for fill_symbol, dated_fills in fills_by_symbol.items():
        position = positions.get(fill_symbol, ZERO) - sum(
            (_signed(fill) for _, fill in dated_fills), ZERO
        )
        for fill_day in sorted({fill_day for fill_day, _ in dated_fills} | {day}):
            fills = [fill for each_day, fill in dated_fills if each_day == fill_day]
            trades = count_day_trades(fills, position) if fill_day in counted_days else 0
            if fill_day == day and fill_symbol == symbol:
                with_order = count_day_trades([*fills, Fill(side, qty)], position)
                completes = with_order > trades
                trades = with_order
            if fill_day == day:
                today += trades
            window += trades
            position += sum((_signed(fill) for fill in fills), ZERO)
    return DayTradeCount(completes=completes, today=today, window=window)
