"""The paper exchange's ledger: an account's valuation, positions and buying power."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.conf import settings

from tradedesk import rows
from tradedesk.broker import calendar, types
from tradedesk.broker.types import Account, Position

from . import market
from .models import SimAccount, SimOrder, SimOrderEvent, SimPosition
from .universe import ASSETS


def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


def positions_by_symbol(account: SimAccount) -> dict[str, SimPosition]:
    """Every position row of the account by symbol, closed (zero) ones too: read once per
    account instance (a locked read may bring them along: exchange.SimBroker._account), so
    the checks and the fills of one transaction share them."""
    positions = getattr(account, "_positions", None)
    if positions is None:
        positions = account._positions = {p.symbol: p for p in account.positions.all()}
    return positions


def held_positions(account: SimAccount) -> list[SimPosition]:
    return [position for position in positions_by_symbol(account).values() if position.qty]


def account_view(
    account: SimAccount, held: list[SimPosition], open_orders: list[SimOrder], now: datetime
) -> Account:
    long_value, short_value = market_values(held, now)
    equity = account.cash + long_value + short_value
    return Account(
        account_id=account.account_id,
        status="ACTIVE",
        currency="USD",
        cash=_cents(account.cash),
        buying_power=_cents(buying_power(account, long_value, short_value, open_orders, now)),
        equity=_cents(equity),
        last_equity=_cents(last_equity(account, held, now)),
        portfolio_value=_cents(equity),
        long_market_value=_cents(long_value),
        short_market_value=_cents(short_value),
        multiplier=settings.SIM_MARGIN_MULTIPLIER,
        shorting_enabled=settings.SIM_MARGIN_MULTIPLIER > 1,
    )


def last_equity(account: SimAccount, held: list[SimPosition], now: datetime) -> Decimal:
    """The equity at the last session close, worked out once per close and kept on the
    account (a read of the session's executions, which would grow with the day)."""
    close_at = calendar.previous_close(now)
    if account.close_equity_at != close_at:
        account.close_equity = close_equity(account, held, close_at)
        account.close_equity_at = close_at
        rows.save_columns(account, "close_equity", "close_equity_at")
    return account.close_equity


def close_equity(account: SimAccount, held: list[SimPosition], close_at: datetime) -> Decimal:
    """The account's equity at a session close: its cash and positions then (the executions
    since undone), priced at that close. Day P&L is equity now less this."""
    cash = account.cash
    quantities = {position.symbol: position.qty for position in held}
    since = SimOrderEvent.objects.filter(
        account=account, event__in=types.EXECUTION_EVENTS, at__gt=close_at
    ).values_list("order__symbol", "order__side", "qty", "price")
    for symbol, side, qty, price in since:
        signed = qty if side == "buy" else -qty
        cash += signed * price
        quantities[symbol] = quantities.get(symbol, Decimal("0")) - signed
    return cash + sum(
        (qty * market.trade(symbol, close_at).price for symbol, qty in quantities.items() if qty),
        Decimal("0"),
    )


def position_views(held: list[SimPosition], now: datetime) -> list[Position]:
    result = []
    for position in sorted(held, key=lambda position: position.symbol):
        price = market.trade(position.symbol, now).price
        market_value = position.qty * price
        cost_basis = position.qty * position.avg_entry_price
        unrealized = market_value - cost_basis
        result.append(
            Position(
                symbol=position.symbol,
                asset_id=ASSETS[position.symbol].id,
                qty=position.qty,
                side="long" if position.qty > 0 else "short",
                avg_entry_price=position.avg_entry_price,
                current_price=price,
                market_value=_cents(market_value),
                cost_basis=_cents(cost_basis),
                unrealized_pl=_cents(unrealized),
                unrealized_plpc=(unrealized / abs(cost_basis)).quantize(Decimal("0.0001"))
                if cost_basis
                else Decimal("0"),
            )
        )
    return result


def market_values(positions: Iterable[SimPosition], now: datetime) -> tuple[Decimal, Decimal]:
    """Long and short (negative) market value of the positions at `now`."""
    long_value = short_value = Decimal("0")
    for position in positions:
        value = position.qty * market.trade(position.symbol, now).price
        if value >= 0:
            long_value += value
        else:
            short_value += value
    return long_value, short_value


def _open_buy_commitment(open_orders: Iterable[SimOrder], now: datetime) -> Decimal:
    """What the open buy orders would still spend (limit/stop price, else the ask)."""
    total = Decimal("0")
    for order in open_orders:
        if order.side != "buy" or order.status == "held":
            continue
        if order.qty is None:
            total += order.notional
            continue
        price = order.limit_price or order.stop_price or market.quote(order.symbol, now).ask_price
        total += (order.qty - order.filled_qty) * price
    return total


def buying_power(
    account: SimAccount,
    long_value: Decimal,
    short_value: Decimal,
    open_orders: Iterable[SimOrder],
    now: datetime,
) -> Decimal:
    """From the positions' market values and the account's open orders (matched up to now)."""
    equity = account.cash + long_value + short_value
    available = settings.SIM_MARGIN_MULTIPLIER * equity - (long_value - short_value)
    return max(Decimal("0"), available - _open_buy_commitment(open_orders, now))


def held_for_sells(open_orders: Iterable[SimOrder], symbol: str) -> Decimal:
    """Shares promised to open sell orders; an OCO group's exits count once."""
    by_group: dict = {}
    for order in open_orders:
        if order.symbol != symbol or order.side != "sell" or order.status == "held":
            continue
        if order.qty is None:  # a notional sell promises no shares yet
            continue
        group = order.parent_id if order.parent_id and order.order_class != "simple" else order.id
        by_group[group] = max(by_group.get(group, Decimal("0")), order.qty - order.filled_qty)
    return sum(by_group.values(), Decimal("0"))
