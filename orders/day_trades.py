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
- The replay is kept between orders (in the cache, per account: each symbol-day's state and
  the last fill event applied) and advanced with only the fills recorded since, so a closing
  order's read does not grow with the day. Whatever would make it differ from a full replay
  (an earlier fill arriving late, a start of a day the current positions contradict) sends
  it back to a full replay of the window.
- Only a fill against the position can complete a day trade, and the order is counted as
  filling after every recorded execution, i.e. against the current position: a buy while
  flat or long, or a sell while flat or short, completes none, and its count reads nothing.
- Business days are NYSE sessions; "the last 5 business days" are the trading day and the four
  sessions before it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache

import pandas as pd
from django.core.cache import cache

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


def _signed(fill: Fill | selectors.Execution) -> Decimal:
    return fill.qty if fill.side == "buy" else -fill.qty


@dataclass
class _Tally:
    """One symbol's day replayed so far: the state count_day_trades reaches from `start`."""

    start: Decimal  # the signed position at the start of the day
    position: Decimal
    opened_today: Decimal = ZERO  # how much of the position (in absolute shares) was opened today
    run_side: str | None = None
    run_counted: bool = False
    count: int = 0
    last: tuple[datetime, int] | None = None  # (time, order id) of the last execution applied

    @property
    def net(self) -> Decimal:
        return self.position - self.start

    def apply(self, fill: Fill) -> None:
        if fill.qty <= 0:
            return
        if fill.side != self.run_side:
            self.run_side, self.run_counted = fill.side, False
        signed = _signed(fill)
        if self.position != 0 and (self.position > 0) != (signed > 0):
            closing = min(fill.qty, abs(self.position))
            if self.opened_today > 0 and not self.run_counted:
                self.count += 1
                self.run_counted = True
            self.opened_today = max(ZERO, self.opened_today - closing)
            if fill.qty > closing:  # crossed zero: the rest opens the other side today
                self.opened_today = fill.qty - closing
        else:
            self.opened_today += fill.qty
        self.position += signed


def count_day_trades(fills: Iterable[Fill], start_qty: Decimal = ZERO) -> int:
    """Day trades in one symbol's fills of one day, in order, from a signed starting position."""
    tally = _Tally(start_qty, start_qty)
    for fill in fills:
        tally.apply(fill)
    return tally.count


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
    tallies = _replayed(broker_account, positions, days[0]).tallies
    counted_days = set(days)
    window = sum(
        tally.count for (each_day, _), tally in tallies.items() if each_day in counted_days
    )
    today = sum(tally.count for (each_day, _), tally in tallies.items() if each_day == day)
    before = tallies.get((day, symbol))
    if before is None:
        nets = {key: tally.net for key, tally in tallies.items()} | {(day, symbol): ZERO}
        start = _starts(nets, positions)[day, symbol]
        before = _Tally(start, start)
    with_order = replace(before)
    with_order.apply(Fill(side, qty))
    added = with_order.count - before.count
    return DayTradeCount(completes=added > 0, today=today + added, window=window + added)


# The replay kept between orders (per broker account, in the cache) and advanced with only the
# fill events after the last one it applied. Any cache serves; a lost entry costs a full read.
_REPLAY_KEY = "day-trades.replay.v1.{}"
_REPLAY_TIMEOUT = (BUSINESS_DAYS + 4) * 24 * 3600
# How far an app server's clock may lag the one that wrote the last order read (updated_at):
# the next read looks that much further back.
_CLOCK_SKEW = timedelta(seconds=2)

SymbolDay = tuple[date, str]  # a New York date and a symbol


@dataclass
class _Replay:
    first_day: date  # the tallies run from this New York date on
    last_event: int  # the fill events up to this id are applied
    last_updated: datetime | None  # the latest updated_at of the orders read
    tallies: dict[SymbolDay, _Tally] = field(default_factory=dict)
    rests: dict[int, selectors.Execution] = field(default_factory=dict)  # the read's, applied

    def advance(self, read: selectors.FillRead, positions: Mapping[str, Decimal]) -> bool:
        """Apply a read's executions. False, and the replay is spoiled, when it would differ
        from a full one: an execution older than one its symbol's day applied, or a start of a
        day the current positions contradict (a fill the reads missed, a position changed
        outside the desk)."""
        if any(self.rests.get(order_id, rest) != rest for order_id, rest in read.rests.items()):
            return False  # an order's fill without an event grew: it is one execution
        if any(execution.order_id in self.rests for execution in read.executions):
            return False  # an order taken at filled_at has events now: they are its executions
        new_rests = [rest for order_id, rest in read.rests.items() if order_id not in self.rests]
        zone = market_zone()
        arrived: dict[SymbolDay, list[selectors.Execution]] = defaultdict(list)
        for execution in sorted([*read.executions, *new_rests], key=selectors.execution_order):
            arrived[execution.at.astimezone(zone).date(), execution.symbol].append(execution)
        for key, executions in arrived.items():
            tally = self.tallies.get(key)
            if tally is not None and (executions[0].at, executions[0].order_id) <= tally.last:
                return False
        nets = {key: tally.net for key, tally in self.tallies.items()}
        for key, executions in arrived.items():
            nets[key] = nets.get(key, ZERO) + sum((_signed(e) for e in executions), ZERO)
        starts = _starts(nets, positions)
        if any(tally.start != starts[key] for key, tally in self.tallies.items()):
            return False
        for key, executions in arrived.items():
            tally = self.tallies.setdefault(key, _Tally(starts[key], starts[key]))
            for execution in executions:
                tally.apply(Fill(execution.side, execution.qty))
            tally.last = (executions[-1].at, executions[-1].order_id)
        self.rests.update(read.rests)
        self.last_event = read.last_event
        if read.last_updated is not None:
            self.last_updated = max(read.last_updated, self.last_updated or read.last_updated)
        return True


def _replayed(
    broker_account: BrokerAccount, positions: Mapping[str, Decimal], first_day: date
) -> _Replay:
    """The account's executions from `first_day` on replayed per symbol and day, as a full
    replay of them all from the current `positions` leaves them: the cached replay advanced
    by one read of the fill events after it, or (none, or it would differ) a full read."""
    key = _REPLAY_KEY.format(broker_account.pk)
    since = day_start(first_day)
    replay = cache.get(key)
    if replay is not None and replay.first_day <= first_day:
        replay.tallies = {
            day: tally for day, tally in replay.tallies.items() if day[0] >= first_day
        }
        replay.rests = {order: rest for order, rest in replay.rests.items() if rest.at >= since}
        replay.first_day = first_day
        updated_since = since
        if replay.last_updated is not None:
            updated_since = max(since, replay.last_updated - _CLOCK_SKEW)
        read = selectors.fills_since(
            broker_account, since, after_event=replay.last_event, updated_since=updated_since
        )
        if read.reordered or not replay.advance(read, positions):
            replay = None
    else:
        replay = None
    if replay is None:
        replay = _Replay(first_day, 0, None)
        replay.advance(selectors.fills_since(broker_account, since), positions)
    cache.set(key, replay, _REPLAY_TIMEOUT)
    return replay


def _starts(
    nets: Mapping[SymbolDay, Decimal], positions: Mapping[str, Decimal]
) -> dict[SymbolDay, Decimal]:
    """Each symbol's position at the start of each day: the current one less the desk's
    executions since (`nets`: each day's signed sum)."""
    starts = {}
    after: dict[str, Decimal] = {}
    for day, symbol in sorted(nets, reverse=True):
        position = after.get(symbol, positions.get(symbol, ZERO)) - nets[day, symbol]
        starts[day, symbol] = after[symbol] = position
    return starts
