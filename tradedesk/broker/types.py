"""Plain data classes that cross the broker interface.

Money and quantities are Decimal, times are aware UTC datetimes, and status,
side, type and time-in-force values keep Alpaca's names so both brokers speak
the same vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

ORDER_SIDES = ("buy", "sell")
ORDER_TYPES = ("market", "limit", "stop", "stop_limit", "trailing_stop")
TIME_IN_FORCE = ("day", "gtc", "opg", "cls", "ioc", "fok")
# The order classes and statuses the desk knows by name (the paper exchange's vocabulary,
# forms and filters). A broker may report others (Alpaca adds them: `pending_review`, `mleg`):
# the desk stores those as they came, and an unknown status counts as open.
ORDER_CLASSES = ("simple", "bracket", "oco", "oto")
ORDER_STATUSES = (
    "new",
    "partially_filled",
    "filled",
    "done_for_day",
    "canceled",
    "expired",
    "replaced",
    "pending_cancel",
    "pending_replace",
    "pending_new",
    "accepted",
    "accepted_for_bidding",
    "stopped",
    "rejected",
    "suspended",
    "calculated",
    "held",
)
# Statuses after which an order never changes again.
TERMINAL_STATUSES = frozenset({"filled", "canceled", "expired", "replaced", "rejected"})
# The known statuses of an order that can still trade. A status the desk has never seen is
# open too (until the broker says otherwise): query with `~Q(status__in=TERMINAL_STATUSES)`.
OPEN_STATUSES = frozenset(ORDER_STATUSES) - TERMINAL_STATUSES


def is_open_status(status: str) -> bool:
    """Whether an order in `status` may still trade: any status but a terminal one."""
    return status not in TERMINAL_STATUSES


TIMEFRAMES = ("1Min", "1Hour", "1Day")
# Alpaca's trade_updates events. An execution event carries its own price, qty and execution_id;
# a refusal event reports a cancel or replace the broker turned down, the order unchanged.
EXECUTION_EVENTS = frozenset({"fill", "partial_fill"})
REFUSAL_EVENTS = frozenset({"order_cancel_rejected", "order_replace_rejected"})
TRADE_UPDATE_EVENTS = (
    "new",
    "fill",
    "partial_fill",
    "canceled",
    "expired",
    "done_for_day",
    "replaced",
    "rejected",
    "pending_new",
    "stopped",
    "pending_cancel",
    "pending_replace",
    "calculated",
    "suspended",
    "order_replace_rejected",
    "order_cancel_rejected",
)


@dataclass(frozen=True)
class Account:
    account_id: str
    status: str
    currency: str
    cash: Decimal
    buying_power: Decimal
    equity: Decimal
    last_equity: Decimal
    portfolio_value: Decimal
    long_market_value: Decimal = Decimal("0")
    short_market_value: Decimal = Decimal("0")
    multiplier: Decimal = Decimal("1")
    shorting_enabled: bool = False
    trading_blocked: bool = False


@dataclass(frozen=True)
class Clock:
    timestamp: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime


@dataclass(frozen=True)
class Asset:
    id: str
    symbol: str
    name: str
    exchange: str
    asset_class: str = "us_equity"
    status: str = "active"
    tradable: bool = True
    marginable: bool = True
    shortable: bool = True
    easy_to_borrow: bool = True
    fractionable: bool = True


@dataclass(frozen=True)
class Quote:
    symbol: str
    bid_price: Decimal
    bid_size: Decimal
    ask_price: Decimal
    ask_size: Decimal
    timestamp: datetime

    @property
    def mid(self) -> Decimal:
        return (self.bid_price + self.ask_price) / 2


@dataclass(frozen=True)
class Trade:
    symbol: str
    price: Decimal
    size: Decimal
    timestamp: datetime


@dataclass(frozen=True)
class Bar:
    symbol: str
    timestamp: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True)
class Position:
    symbol: str
    asset_id: str
    qty: Decimal
    side: str  # long | short
    avg_entry_price: Decimal
    current_price: Decimal
    market_value: Decimal
    cost_basis: Decimal
    unrealized_pl: Decimal
    unrealized_plpc: Decimal
    asset_class: str = "us_equity"


@dataclass(frozen=True)
class LegRequest:
    """A bracket/oco/oto leg: take_profit has limit_price; stop_loss has stop_price (+ limit)."""

    limit_price: Decimal | None = None
    stop_price: Decimal | None = None


@dataclass(frozen=True)
class OrderRequest:
    """An order as a client asks for it. The desk fills in client_order_id (generated when the
    client gave none) before submitting: a broker always receives one."""

    symbol: str
    side: str
    type: str
    time_in_force: str
    client_order_id: str = ""
    qty: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    extended_hours: bool = False
    order_class: str = "simple"
    take_profit: LegRequest | None = None
    stop_loss: LegRequest | None = None


@dataclass(frozen=True)
class ReplaceRequest:
    qty: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail: Decimal | None = None
    time_in_force: str | None = None
    client_order_id: str | None = None


@dataclass(frozen=True)
class BrokerOrder:
    """An order as the broker reports it (Alpaca's order object, typed)."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    status: str
    created_at: datetime
    updated_at: datetime
    asset_id: str = ""
    asset_class: str = "us_equity"
    order_class: str = "simple"
    qty: Decimal | None = None
    notional: Decimal | None = None
    filled_qty: Decimal = Decimal("0")
    filled_avg_price: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    hwm: Decimal | None = None
    extended_hours: bool = False
    submitted_at: datetime | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    failed_at: datetime | None = None
    replaced_at: datetime | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    expires_at: datetime | None = None
    position_intent: str = ""  # Alpaca's buy_to_open, sell_to_close, … ("" when not given)
    legs: tuple[BrokerOrder, ...] = field(default_factory=tuple)

    @property
    def is_open(self) -> bool:
        return is_open_status(self.status)


@dataclass(frozen=True)
class OrderUpdate:
    """One trade-update event (Alpaca's trade_updates stream, or the paper exchange's).

    For an execution event (fill, partial_fill) `price`, `qty`, `execution_id` and `timestamp`
    are that execution's own; `order` is the order right after it (its average price).
    """

    event: str
    order: BrokerOrder
    timestamp: datetime
    price: Decimal | None = None
    qty: Decimal | None = None
    position_qty: Decimal | None = None
    # The account at the broker, for a feed that carries several accounts (the paper exchange's).
    account_id: str = ""
    execution_id: str = ""
    # Why the broker refused a cancel or replace, when it says (Alpaca documents no field).
    reason: str = ""

    @property
    def is_execution(self) -> bool:
        return self.event in EXECUTION_EVENTS


@dataclass(frozen=True)
class FillActivity:
    """One execution from the account's activity log (Alpaca's FILL activity)."""

    id: str  # the activity id: also the page token that continues after it
    order_id: str
    symbol: str
    side: str
    type: str  # fill | partial_fill
    price: Decimal
    qty: Decimal
    cum_qty: Decimal
    leaves_qty: Decimal
    transaction_time: datetime
    order_status: str = ""


# The non-trade activities in which Alpaca charges fees: regulatory fees (FEE: REG, TAF, CAT, …,
# charged at the end of each trading day) and pass-through charges (PTC).
FEE_ACTIVITY_TYPES = ("FEE", "PTC")


@dataclass(frozen=True)
class FeeActivity:
    """A fee the broker charged the account, from its activity log (Alpaca's FEE and PTC
    non-trade activities). Alpaca's shape links it to no execution: it has the trading day,
    and a symbol or an order id only when the broker gives one."""

    id: str  # the activity id: also the page token that continues after it
    activity_type: str  # FEE | PTC
    date: date  # the day it was charged for, as the broker reports it
    amount: Decimal  # Alpaca's net_amount negated: a charge is positive, a refund negative
    sub_type: str = ""  # Alpaca's activity_sub_type: REG, TAF, CAT, … ("" when not given)
    symbol: str = ""
    order_id: str = ""
    description: str = ""
    status: str = ""  # executed | correct | canceled ("" when not given)


class _MultiStatusItem:
    """An item of a 207 multi-status body: `status` is that item's own HTTP status."""

    status: int

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class CancelResult(_MultiStatusItem):
    """One order of a cancel-all (an item of Alpaca's 207 multi-status body)."""

    order_id: str
    status: int  # the HTTP status of this order's cancel
    code: int | str | None = None
    message: str = ""


@dataclass(frozen=True)
class ClosePositionResult(_MultiStatusItem):
    """One position of a close-all: the closing order, or why there is none."""

    symbol: str
    status: int
    order: BrokerOrder | None = None
    code: int | str | None = None
    message: str = ""


@dataclass(frozen=True)
class KeyProblem:
    """Why a key id or secret given for linking can't be the provider's (`field` names which)."""

    code: str
    field: str
    message: str
