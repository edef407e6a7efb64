"""The day-trade count kept between orders: advanced with only the fills recorded since, it
gives what a full replay of the window's fills gives, and its read does not grow with the day."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders import day_trades, selectors
from orders.day_trades import Fill, business_days, count_day_trades
from orders.models import Order, OrderEvent
from orders.tests.day_support import fill_day
from tradedesk.broker.calendar import market_zone

from .validation_support import desk_order, fill

pytestmark = pytest.mark.django_db

D = Decimal
TUESDAY = datetime(2026, 11, 24, tzinfo=UTC).date()
# The window's sessions and the day before it (its fills must not count).
FILL_DAYS = [datetime(2026, 11, day, tzinfo=UTC).date() for day in (17, 18, 19, 20, 23, 24)]
SYMBOLS = ("AAPL", "MSFT", "KO")


def _signed(side: str, qty: Decimal) -> Decimal:
    return qty if side == "buy" else -qty


def full_replay(executions, positions, symbol, side, qty, day) -> day_trades.DayTradeCount:
    """The count as a replay of every execution in the window makes it (the oracle)."""
    days = business_days(day)
    first = day_trades.day_start(days[0])
    by_day = defaultdict(list)
    for at, _order_id, fill_symbol, fill_side, fill_qty in sorted(executions):
        if at >= first:
            by_day[fill_symbol, at.astimezone(market_zone()).date()].append(
                Fill(fill_side, fill_qty)
            )
    by_day.setdefault((symbol, day), [])
    after = {}
    window = today = 0
    completes = False
    for fill_symbol, fill_day_ in sorted(by_day, key=lambda key: (key[0], key[1]), reverse=True):
        fills = by_day[fill_symbol, fill_day_]
        end = after.get(fill_symbol, positions.get(fill_symbol, D(0)))
        start = end - sum((_signed(each.side, each.qty) for each in fills), D(0))
        after[fill_symbol] = start
        trades = count_day_trades(fills, start) if fill_day_ in days else 0
        if (fill_symbol, fill_day_) == (symbol, day):
            with_order = count_day_trades([*fills, Fill(side, qty)], start)
            completes = with_order > trades
            trades = with_order
        window += trades
        today += trades if fill_day_ == day else 0
    return day_trades.DayTradeCount(completes=completes, today=today, window=window)


class Desk:
    """An account's fills as the tests record them, with what the oracle needs."""

    def __init__(self, account, rng: random.Random):
        self.account, self.rng = account, rng
        self.executions = []  # (at, order id, symbol, side, qty)
        self.held = {symbol: D(rng.choice([-20, 0, 30])) for symbol in SYMBOLS}  # overnight
        self.partial = []  # orders filled in part, to be filled later

    def _at(self) -> datetime:
        day = self.rng.choice(FILL_DAYS)
        return datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(
            hours=14, minutes=self.rng.randrange(30, 400), seconds=self.rng.randrange(60)
        )

    def _record(self, order, symbol, side, qty, at):
        self.executions.append((at, order.pk, symbol, side, qty))
        self.held[symbol] += _signed(side, qty)

    def step(self) -> None:
        """One recorded fill: with an event, without one (taken at filled_at), the first or
        the rest of a partial fill; at a random time, so fills arrive out of order too."""
        rng = self.rng
        if self.partial and rng.random() < 0.3:
            placed, first_at = self.partial.pop()
            at = first_at + timedelta(seconds=rng.randrange(1, 90))
            rest = placed.qty - placed.filled_qty
            placed.filled_qty, placed.status, placed.filled_at = placed.qty, "filled", at
            placed.save()
            OrderEvent.objects.create(
                order=placed, event="fill", status="filled", filled_qty=placed.qty,
                source="stream", at=at,
            )  # fmt: skip
            self._record(placed, placed.symbol, placed.side, rest, at)
            return
        symbol, side = rng.choice(SYMBOLS), rng.choice(["buy", "sell"])
        qty, at = D(rng.randrange(1, 40)), self._at()
        kind = rng.random()
        if kind < 0.2:
            self._record(
                fill(self.account, side, str(qty), at, symbol=symbol), symbol, side, qty, at
            )
            return
        first = qty if kind < 0.7 else D(rng.randrange(1, int(qty) + 1))
        placed = desk_order(
            self.account, symbol=symbol, side=side, qty=qty, filled_qty=first,
            status="filled" if first == qty else "partially_filled",
            filled_at=at if first == qty else None,
        )  # fmt: skip
        OrderEvent.objects.create(
            order=placed, event="fill" if first == qty else "partial_fill",
            status=placed.status, filled_qty=first, source="stream", at=at,
        )  # fmt: skip
        self._record(placed, symbol, side, first, at)
        if first < qty:
            self.partial.append((placed, at))

    def check(self) -> None:
        closing = [symbol for symbol in SYMBOLS if self.held[symbol] != 0]
        if not closing:
            return
        symbol = self.rng.choice(closing)
        side = "sell" if self.held[symbol] > 0 else "buy"
        arguments = {"positions": dict(self.held), "symbol": symbol, "side": side}
        arguments |= {"qty": D(self.rng.randrange(1, 50)), "day": TUESDAY}
        kept = day_trades.count_with_order(broker_account=self.account, **arguments)
        assert kept == full_replay(self.executions, **arguments), (kept, self.executions)


@pytest.mark.parametrize("seed", range(12))
def test_the_kept_count_equals_a_full_replay_of_random_fills(trader, monkeypatch, seed):
    reads = []
    real = selectors.fills_since
    monkeypatch.setattr(selectors, "fills_since", lambda *a, **k: reads.append(k) or real(*a, **k))
    desk = Desk(trader.broker_accounts.get(), random.Random(seed))
    for _ in range(40):
        for _ in range(desk.rng.randrange(1, 4)):
            desk.step()
        desk.check()
    # Both ways were taken: advancing the kept replay, and replaying in full (an earlier fill
    # arriving late, a fill without an event).
    incremental = sum(1 for each in reads if each.get("after_event") is not None)
    assert 0 < incremental < len(reads)


def test_fills_arriving_in_order_advance_the_kept_count_without_a_full_read(trader, monkeypatch):
    account = trader.broker_accounts.get()
    reads = []
    real = selectors.fills_since
    monkeypatch.setattr(selectors, "fills_since", lambda *a, **k: reads.append(k) or real(*a, **k))
    held, executions = D(100), []  # 100 held overnight
    at = datetime(2026, 11, 24, 14, 31, tzinfo=UTC)
    for index in range(30):
        side = "buy" if index % 2 else "sell"
        placed = desk_order(account, side=side, qty=D(5), filled_qty=D(5), status="filled")
        OrderEvent.objects.create(
            order=placed, event="fill", status="filled", filled_qty=D(5), source="stream", at=at
        )
        executions.append((at, placed.pk, "AAPL", side, D(5)))
        held += _signed(side, D(5))
        at += timedelta(minutes=1)
        arguments = {"positions": {"AAPL": held}, "symbol": "AAPL", "side": "sell"}
        arguments |= {"qty": D(1), "day": TUESDAY}
        counted = day_trades.count_with_order(broker_account=account, **arguments)
        assert counted == full_replay(executions, **arguments)
    assert counted.today == 15  # each buy back, then sold again
    assert [each.get("after_event") is None for each in reads] == [True] + [False] * 29


def test_a_position_changed_outside_the_desk_replays_in_full(trader):
    account = trader.broker_accounts.get()
    at = datetime(2026, 11, 24, 14, 31, tzinfo=UTC)
    fill(account, "buy", "10", at)
    arguments = {"symbol": "AAPL", "side": "sell", "qty": D(10), "day": TUESDAY}
    # Long 10, bought today: selling it is a day trade.
    assert day_trades.count_with_order(
        broker_account=account, positions={"AAPL": D(10)}, **arguments
    ).completes
    # 100 more arrive from elsewhere: the day started long 90, which the sale can close.
    positions = {"AAPL": D(100)}
    counted = day_trades.count_with_order(broker_account=account, positions=positions, **arguments)
    assert counted == full_replay([(at, 0, "AAPL", "buy", D(10))], positions, **arguments)
    assert counted.completes  # today's shares close first


def _rows_of_the_closing_read(trader, fills_that_day: int) -> int:
    """Rows the day-trade read of a closing sale fetches, once the count is kept, after
    `fills_that_day` fills earlier in the day and one since the last closing order."""
    account = trader.broker_accounts.get()
    fill_day(trader, fills_that_day, alternate=True)
    earlier = timezone.now() - timedelta(minutes=10)
    Order.objects.filter(broker_account=account).update(updated_at=earlier)
    OrderEvent.objects.filter(order__broker_account=account).update(at=earlier)
    Order.objects.filter(broker_account=account).update(filled_at=earlier)
    today = day_trades.trading_day(timezone.now(), trades_now=True)
    arguments = {"symbol": "AAPL", "side": "sell", "qty": D(1), "day": today}
    fill(account, "buy", "1", timezone.now())  # long 1
    day_trades.count_with_order(broker_account=account, positions={"AAPL": D(1)}, **arguments)
    fill(account, "buy", "1", timezone.now())
    with CaptureQueriesContext(connection) as captured:
        counted = day_trades.count_with_order(
            broker_account=account, positions={"AAPL": D(2)}, **arguments
        )
    assert counted.completes and counted.today == fills_that_day // 2 + 1
    (read,) = captured.captured_queries
    with connection.cursor() as cursor:
        cursor.execute(read["sql"])
        return len(cursor.fetchall())


def test_the_closing_orders_read_does_not_grow_with_the_days_fills(trader, make_user):
    few = _rows_of_the_closing_read(trader, 10)
    cache.clear()
    many = _rows_of_the_closing_read(make_user("bob"), 1000)
    assert few == many <= 3
