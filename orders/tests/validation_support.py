"""Helpers for the validation tests: a recording broker, order builders and desk rows."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

from accounts.models import BrokerAccount, User
from accounts.services import broker_for
from orders.models import Order
from orders.validation import CODES, ORDER_FIELDS, Issue, OrderInput, Verdict, validate_order
from tradedesk.broker import Broker, types

# Tuesday 24 November 2026, 10:00 in New York: a regular session.
TUESDAY_OPEN = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
# Thanksgiving: NYSE is closed all day.
THANKSGIVING = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)

_BASE_ORDER = OrderInput(
    symbol="AAPL", side="buy", type="market", time_in_force="day", qty=Decimal("1")
)


def order(**changes) -> OrderInput:
    """A one-share AAPL market buy for the day, with `changes` applied."""
    return replace(_BASE_ORDER, **changes)


class RecordingBroker:
    """Delegates to a real broker, counting calls; can stand in fixed positions."""

    def __init__(self, inner: Broker, positions: dict[str, Decimal] | None = None):
        self.inner = inner
        self.provider = inner.provider
        self.calls: Counter[str] = Counter()
        self.positions = positions

    def __getattr__(self, name: str):
        attribute = getattr(self.inner, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            self.calls[name] += 1
            return attribute(*args, **kwargs)

        return call

    def is_market_open(self, at) -> bool:
        return self.inner.is_market_open(at)  # the broker's rule, not a request: not counted

    def list_positions(self) -> list[types.Position]:
        self.calls["list_positions"] += 1
        if self.positions is None:
            return self.inner.list_positions()
        return [_position(symbol, qty) for symbol, qty in self.positions.items()]

    def get_account_and_positions(self) -> tuple[types.Account, list[types.Position]]:
        # Through the counted (and stood-in) look-ups above.
        return self.get_account(), self.list_positions()


def _position(symbol: str, qty: Decimal) -> types.Position:
    zero = Decimal("0")
    return types.Position(
        symbol=symbol,
        asset_id="",
        qty=qty,
        side="long" if qty > 0 else "short",
        avg_entry_price=Decimal("100"),
        current_price=Decimal("100"),
        market_value=zero,
        cost_basis=zero,
        unrealized_pl=zero,
        unrealized_plpc=zero,
    )


@dataclass
class Desk:
    """A trader, their paper account and a recording broker for it."""

    user: User
    account: BrokerAccount
    broker: RecordingBroker

    def validate(self, order_input: OrderInput, now: datetime | None = TUESDAY_OPEN) -> Verdict:
        verdict = validate_order(
            order_input, broker=self.broker, user=self.user, broker_account=self.account, now=now
        )
        assert_well_formed(verdict)
        return verdict


def make_desk(user: User, positions: dict[str, Decimal] | None = None) -> Desk:
    account = user.broker_accounts.get()
    return Desk(user, account, RecordingBroker(broker_for(account), positions))


def codes(issues: list[Issue]) -> list[str]:
    return [issue.code for issue in issues]


def assert_well_formed(verdict: Verdict) -> None:
    """Every issue carries a documented code, a real field and a message."""
    for issue in [*verdict.errors, *verdict.warnings, *verdict.recommendations]:
        assert issue.code in CODES, issue
        assert issue.field is None or issue.field in ORDER_FIELDS, issue
        assert issue.message.strip(), issue
    assert len(verdict.errors) <= 1  # validation stops at the first hard error


_client_ids = iter(range(1, 1_000_000))


def desk_order(account: BrokerAccount, **values) -> Order:
    """An Order row as the desk records it (created directly: no broker involved)."""
    defaults = {
        "user": account.user,
        "broker_account": account,
        "client_order_id": f"test-{next(_client_ids)}",
        "symbol": "AAPL",
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "qty": Decimal("1"),
        "status": "new",
    }
    return Order.objects.create(**(defaults | values))


def fill(account: BrokerAccount, side: str, qty: str, at: datetime, symbol: str = "AAPL") -> Order:
    """A filled order in the desk's table, filled at `at`."""
    return desk_order(
        account,
        symbol=symbol,
        side=side,
        qty=Decimal(qty),
        filled_qty=Decimal(qty),
        filled_avg_price=Decimal("100"),
        status="filled",
        filled_at=at,
    )
