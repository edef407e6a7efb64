"""The portfolio's reads: lots, round trips, performance, equity history and the P&L calendar.

Each read is a fixed number of queries however many fills there are: the account's fills in
one query, the replace chains in one, snapshots in one, and one broker call per account for
what is live (equity, prices); the lot matching runs over the fetched rows in Python.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from accounts.models import BrokerAccount, User
from accounts.selectors import active_broker_accounts
from accounts.services import broker_for
from orders.models import Order
from tradedesk.broker import calendar, types
from tradedesk.broker.errors import BrokerError

from . import ledger
from .models import AccountSnapshot, Fill

ZERO = Decimal("0")
CENT = Decimal("0.01")
RATIO = Decimal("0.0001")
PERIODS = {
    "1D": timedelta(days=1),
    "1W": timedelta(days=7),
    "1M": timedelta(days=30),
    "3M": timedelta(days=90),
    "1A": timedelta(days=365),
    "all": None,
}
TIMEFRAMES = {"1Min": 60, "5Min": 300, "15Min": 900, "1H": 3600, "1D": 86400}
# The longest period each timeframe may cover (Alpaca's rule: minute bars under 30 days).
TIMEFRAME_LIMITS = {"1Min": "1W", "5Min": "1M", "15Min": "1M", "1H": "3M", "1D": "all"}
DEFAULT_TIMEFRAMES = {"1D": "5Min", "1W": "15Min", "1M": "1H", "3M": "1D", "1A": "1D", "all": "1D"}
LONG_TERM = timedelta(days=365)
WASH_SALE_WINDOW = timedelta(days=30)
TRADING_DAYS = 252


def money(value: Decimal) -> str:
    return str(Decimal(value).quantize(CENT))


def ratio(value: Decimal | float) -> str:
    return str(Decimal(value).quantize(RATIO))


def accounts_for(user: User, broker_account: BrokerAccount | None = None) -> list[BrokerAccount]:
    return [broker_account] if broker_account is not None else list(active_broker_accounts(user))


def period_start(period: str, now: datetime) -> datetime | None:
    span = PERIODS[period]
    return None if span is None else now - span


# --- executions, lots, round trips --------------------------------------------


def _chain_roots(accounts: list[BrokerAccount]) -> dict[tuple[int, str], str]:
    """(account, broker order id) -> the first order of its replace chain, for replacements."""
    replaces = {
        (account_id, broker_id): previous
        for account_id, broker_id, previous in Order.objects.filter(broker_account__in=accounts)
        .exclude(replaces="")
        .values_list("broker_account_id", "broker_order_id", "replaces")
    }
    roots = {}
    for account_id, broker_id in replaces:
        root, seen = broker_id, set()
        while (account_id, root) in replaces and root not in seen:
            seen.add(root)
            root = replaces[(account_id, root)]
        roots[(account_id, broker_id)] = root
    return roots


def executions(accounts: list[BrokerAccount]) -> list[ledger.Execution]:
    roots = _chain_roots(accounts)
    rows = Fill.objects.filter(broker_account__in=accounts).values_list(
        "id", "broker_account_id", "broker_order_id", "symbol", "side", "qty", "price", "fee", "at"
    )
    return [
        ledger.Execution(
            id=pk,
            account_id=account_id,
            order_key=roots.get((account_id, broker_id), broker_id) or f"fill:{pk}",
            symbol=symbol,
            side=side,
            qty=qty,
            price=price,
            fee=fee,
            at=at,
        )
        for pk, account_id, broker_id, symbol, side, qty, price, fee, at in rows
    ]


@dataclass
class Book:
    """Everything the views read: the ledger, prices now and the live accounts."""

    accounts: list[BrokerAccount]
    fills: list[ledger.Execution]
    ledger: ledger.Ledger
    prices: dict[tuple[int, str], Decimal]
    live: dict[int, types.Account]  # by account id; missing when its broker failed
    now: datetime


def book(accounts: list[BrokerAccount], *, now: datetime | None = None) -> Book:
    fills = executions(accounts)
    built = ledger.build(fills, settings.LOT_METHOD)
    held = defaultdict(set)
    for lot in built.lots:
        held[lot.account_id].add(lot.symbol)
    last_price = {(f.account_id, f.symbol): f.price for f in sorted(fills, key=lambda f: f.at)}
    prices, live = {}, {}
    for account in accounts:
        broker = broker_for(account)
        try:
            live[account.pk] = broker.get_account()
            trades = broker.get_latest_trades(sorted(held[account.pk])) if held[account.pk] else {}
        except BrokerError:
            trades = {}
        for symbol in held[account.pk]:
            trade = trades.get(symbol)
            prices[(account.pk, symbol)] = (
                trade.price if trade is not None else last_price[(account.pk, symbol)]
            )
    return Book(accounts, fills, built, prices, live, now or timezone.now())


def lot_rows(current: Book, user: User) -> list[dict]:
    """Open lots, with the tax-loss-harvesting view: unrealized P&L, term, wash-sale risk.

    Wash-sale risk: a long lot at a loss now while the symbol was bought in the last 30 days
    (in any of the user's accounts: the rule is the taxpayer's) by a fill other than the lot's.
    """
    recent_buys = defaultdict(list)
    since = current.now - WASH_SALE_WINDOW
    for symbol, pk in Fill.objects.filter(
        broker_account__user=user, side="buy", at__gte=since
    ).values_list("symbol", "pk"):
        recent_buys[symbol].append(pk)
    rows = []
    for lot in sorted(current.ledger.lots, key=lambda lot: (lot.symbol, lot.acquired_at)):
        price = current.prices[(lot.account_id, lot.symbol)]
        unrealized = (price - lot.price) * lot.qty
        others = [pk for pk in recent_buys[lot.symbol] if pk != lot.fill_id]
        rows.append(
            {
                "broker_account": lot.account_id,
                "symbol": lot.symbol,
                "side": "long" if lot.qty > 0 else "short",
                "qty": str(lot.qty),
                "cost_basis": money(lot.price * abs(lot.qty)),
                "entry_price": str(lot.price),
                "price": str(price),
                "acquired_at": lot.acquired_at,
                "unrealized_pl": money(unrealized),
                "term": "long" if current.now - lot.acquired_at > LONG_TERM else "short",
                "harvest_candidate": unrealized < 0,
                "wash_sale_risk": bool(unrealized < 0 and lot.qty > 0 and others),
            }
        )
    return rows


def trade_row(trip: ledger.RoundTrip) -> dict:
    return {
        "broker_account": trip.account_id,
        "symbol": trip.symbol,
        "direction": trip.direction,
        "qty": str(trip.qty),
        "entry_price": str(trip.entry_price.quantize(Decimal("0.000001"))),
        "exit_price": str(trip.exit_price.quantize(Decimal("0.000001"))),
        "opened_at": trip.opened_at,
        "closed_at": trip.closed_at,
        "fees": money(trip.fees),
        "realized_pl": money(trip.realized_pl),
        "realized_pl_pct": ratio(trip.realized_pl_pct),
        "holding_days": str(trip.holding_days.quantize(CENT)),
    }


def closed_trips(current: Book, start: datetime | None = None) -> list[ledger.RoundTrip]:
    return [trip for trip in current.ledger.round_trips if start is None or trip.closed_at >= start]


# --- equity ------------------------------------------------------------------


def equity_points(
    current: Book, start: datetime | None
) -> list[tuple[datetime, dict[int, Decimal]]]:
    """Snapshots in the window, oldest first, then each account's live equity as of now."""
    snapshots = AccountSnapshot.objects.filter(broker_account__in=current.accounts)
    if start is not None:
        snapshots = snapshots.filter(at__gte=start)
    points = [
        (at, {account_id: equity})
        for account_id, at, equity in snapshots.order_by("at", "id").values_list(
            "broker_account_id", "at", "equity"
        )
    ]
    live = {pk: info.equity for pk, info in current.live.items()}
    if live:
        points.append((current.now, live))
    return points


def _bucket(at: datetime, seconds: int) -> int:
    """The epoch second a point's bucket starts at: New York midnight for days."""
    if seconds == 86400:
        local = at.astimezone(calendar.market_zone())
        return int(local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp())
    return int(at.timestamp()) // seconds * seconds


def sampled_equity(
    points: Iterable[tuple[datetime, dict[int, Decimal]]], seconds: int
) -> list[tuple[int, Decimal]]:
    """One point per bucket: the sum over accounts of each one's last equity so far (an
    account without a point in a bucket carries its last one forward)."""
    latest: dict[int, Decimal] = {}
    series: dict[int, Decimal] = {}
    for at, equities in points:
        latest.update(equities)
        series[_bucket(at, seconds)] = sum(latest.values(), ZERO)
    return sorted(series.items())


def history(current: Book, *, period: str, timeframe: str) -> dict:
    series = sampled_equity(
        equity_points(current, period_start(period, current.now)), TIMEFRAMES[timeframe]
    )
    base = series[0][1] if series else ZERO
    return {
        "timestamp": [stamp for stamp, _ in series],
        "equity": [money(equity) for _, equity in series],
        "profit_loss": [money(equity - base) for _, equity in series],
        "profit_loss_pct": [ratio((equity - base) / base if base else 0) for _, equity in series],
        "base_value": money(base),
        "timeframe": timeframe,
    }


def drawdown(equities: list[Decimal]) -> tuple[Decimal, Decimal, list[Decimal]]:
    """Largest fall from a peak (money, fraction of the peak), and the fraction at each point."""
    peak, worst, worst_pct, path = None, ZERO, ZERO, []
    for equity in equities:
        peak = equity if peak is None or equity > peak else peak
        fall = peak - equity
        pct = fall / peak if peak else ZERO
        path.append(pct)
        if fall > worst:
            worst, worst_pct = fall, pct
    return worst, worst_pct, path


def _risk_ratios(daily: list[Decimal]) -> tuple[Decimal, Decimal]:
    """Annualized Sharpe and Sortino of daily returns (risk-free 0); 0 under two returns."""
    returns = [(b - a) / a for a, b in itertools.pairwise(daily) if a]
    if len(returns) < 2:
        return ZERO, ZERO
    mean = sum(returns, ZERO) / len(returns)
    variance = sum(((r - mean) ** 2 for r in returns), ZERO) / (len(returns) - 1)
    downside = sum((min(r, ZERO) ** 2 for r in returns), ZERO) / len(returns)
    annual = Decimal(math.sqrt(TRADING_DAYS))
    sharpe = mean / variance.sqrt() * annual if variance else ZERO
    sortino = mean / downside.sqrt() * annual if downside else ZERO
    return sharpe, sortino


# --- performance -------------------------------------------------------------------


def _trip_stats(trips: list[ledger.RoundTrip]) -> dict:
    wins = [t.realized_pl for t in trips if t.realized_pl > 0]
    losses = [t.realized_pl for t in trips if t.realized_pl < 0]
    realized = sum((t.realized_pl for t in trips), ZERO)
    gross_loss = -sum(losses, ZERO)
    return {
        "realized_pl": realized,
        "trades": len(trips),
        "winning": len(wins),
        "losing": len(losses),
        "win_rate": Decimal(len(wins)) / len(trips) if trips else ZERO,
        # No losing trade: the factor is unbounded, reported as null.
        "profit_factor": sum(wins, ZERO) / gross_loss if gross_loss else (None if wins else ZERO),
        "expectancy": realized / len(trips) if trips else ZERO,
        "avg_win": sum(wins, ZERO) / len(wins) if wins else ZERO,
        "avg_loss": sum(losses, ZERO) / len(losses) if losses else ZERO,
        "largest_win": max(wins, default=ZERO),
        "largest_loss": min(losses, default=ZERO),
    }


def performance(current: Book, *, period: str) -> dict:
    start = period_start(period, current.now)
    trips = closed_trips(current, start)
    stats = _trip_stats(trips)
    unrealized_by_symbol = defaultdict(Decimal)
    gross = net = ZERO
    for lot in current.ledger.lots:
        price = current.prices[(lot.account_id, lot.symbol)]
        unrealized_by_symbol[lot.symbol] += (price - lot.price) * lot.qty
        gross += abs(lot.qty * price)
        net += lot.qty * price
    unrealized = sum(unrealized_by_symbol.values(), ZERO)
    fees = sum((f.fee for f in current.fills if start is None or f.at >= start), ZERO)
    points = equity_points(current, start)
    max_dd, max_dd_pct, _ = drawdown([e for _, e in sampled_equity(points, 60)])
    sharpe, sortino = _risk_ratios([e for _, e in sampled_equity(points, 86400)])
    by_symbol = defaultdict(list)
    for trip in trips:
        by_symbol[trip.symbol].append(trip)
    symbols = sorted(set(by_symbol) | set(unrealized_by_symbol))
    return {
        "realized_pl": money(stats["realized_pl"]),
        "unrealized_pl": money(unrealized),
        "total_pl": money(stats["realized_pl"] + unrealized),
        "fees": money(fees),
        "trades": stats["trades"],
        "winning": stats["winning"],
        "losing": stats["losing"],
        "win_rate": ratio(stats["win_rate"]),
        "profit_factor": None if stats["profit_factor"] is None else ratio(stats["profit_factor"]),
        "expectancy": money(stats["expectancy"]),
        "avg_win": money(stats["avg_win"]),
        "avg_loss": money(stats["avg_loss"]),
        "largest_win": money(stats["largest_win"]),
        "largest_loss": money(stats["largest_loss"]),
        "max_drawdown": money(max_dd),
        "max_drawdown_pct": ratio(max_dd_pct),
        "sharpe": ratio(sharpe),
        "sortino": ratio(sortino),
        "gross_exposure": money(gross),
        "net_exposure": money(net),
        "by_symbol": [
            {
                "symbol": symbol,
                "realized_pl": money(sum((t.realized_pl for t in by_symbol[symbol]), ZERO)),
                "unrealized_pl": money(unrealized_by_symbol.get(symbol, ZERO)),
                "trades": len(by_symbol[symbol]),
                "win_rate": ratio(_trip_stats(by_symbol[symbol])["win_rate"]),
            }
            for symbol in symbols
        ],
    }


# --- P&L calendar --------------------------------------------------------------------

INTERVALS = ("day", "week", "month")
MAX_PERIODS = {"day": 400, "week": 260, "month": 120}


def period_of(day: date, interval: str) -> date:
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return day


def market_date(at: datetime) -> date:
    return at.astimezone(calendar.market_zone()).date()


def pnl_calendar(current: Book, *, interval: str, start: date, end: date) -> list[dict]:
    """Per period (New York dates, inclusive): realized P&L and trades closed in it, and the
    change in unrealized P&L: the equity change over the period less what was realized."""
    realized, trades = defaultdict(Decimal), defaultdict(int)
    for trip in current.ledger.round_trips:
        key = period_of(market_date(trip.closed_at), interval)
        realized[key] += trip.realized_pl
        trades[key] += 1
    # The equity at each period's end: the last point in it, or carried from before.
    closing = {}
    for stamp, equity in sampled_equity(equity_points(current, None), 86400):
        closing[
            period_of(market_date(datetime.fromtimestamp(stamp, calendar.market_zone())), interval)
        ] = equity
    rows, previous = [], None
    known = sorted(closing.items())
    for key, equity in known:
        if key < period_of(start, interval):
            previous = equity
    key = period_of(start, interval)
    last = period_of(end, interval)
    while key <= last:
        equity = closing.get(key, previous)
        change = (
            equity - previous - realized[key]
            if equity is not None and previous is not None
            else ZERO
        )
        rows.append(
            {
                "period": key.isoformat(),
                "realized_pl": money(realized[key]),
                "unrealized_change": money(change),
                "trades": trades[key],
            }
        )
        previous = equity if equity is not None else previous
        key = _next_period(key, interval)
    return rows


def _next_period(key: date, interval: str) -> date:
    if interval == "day":
        return key + timedelta(days=1)
    if interval == "week":
        return key + timedelta(days=7)
    return (key.replace(day=28) + timedelta(days=4)).replace(day=1)


def period_count(start: date, end: date, interval: str) -> int:
    count, key = 0, period_of(start, interval)
    while key <= period_of(end, interval) and count <= MAX_PERIODS[interval]:
        count += 1
        key = _next_period(key, interval)
    return count
