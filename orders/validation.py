"""Order validation: one function used by the API, the pages and the admin.

validate_order returns a Verdict of errors, warnings and recommendations, each with a stable
code (every code is documented in CODES below), the field it concerns (one of ORDER_FIELDS, or
None for the order as a whole) and a message a trader understands. Checks run cheapest first
and stop at the first hard error; warnings found before it are kept:

 0. the operator's kill switch, `halted` (no new orders) first;
 1. quantity: exactly one of qty and notional, finite, positive, within MAX_ORDER_QUANTITY;
 2. symbol: ticker format, a known and tradable asset, fractional only where it is fractionable;
 3. side;
 4. type with the prices it needs (and no others), Alpaca's sub-penny rule, time in force,
    fractional/notional only as simple market day orders, order class with the legs it needs
    on the right side of the entry price; extended hours only limit + day;
 5. the kill switch's `reducing` mode (only orders that shrink a position), MAX_POSITION_SIZE
    (dollar value of the resulting position per symbol), MAX_DAILY_TRADES;
 6. buying power (over: error; above BUYING_POWER_WARNING_PCT of it: warning), shorting;
 7. the wash-trade guard (an order that could trade against the account's own open opposite
    order, as Alpaca refuses it);
 8. warnings: market closed (when it queues to), price reasonability (limit/stop more than
    PRICE_WARNING_PCT from the quote), day trading (orders.day_trades counts them from the
    desk's fills; PDT_RULE adds the legacy pattern-day-trader warning);
then, for a new order without errors, recommendations (bracket order, stop-loss) it doesn't
already follow. This is the order of the gate in orders.services (which adds the rate limit
after the kill switch and holds the account's lock around it).

Exposure is the broker's position plus the desk's open orders on the same side, pending ones
not yet at the broker included (an unconfirmed order older than ORDER_PENDING_TIMEOUT blocks
nothing: the reconciler resolves it). Buying power is the broker's, less what unconfirmed desk
orders will spend. A replace is judged as the order it would become, without the order it
replaces (whose held-back cost it releases).

The account, positions, asset and quote come from the broker and are cached for
VALIDATION_CACHE_SECONDS (by broker account, or by provider and symbol). Broker failures
(unavailable, rate limited, refused credentials) propagate: without the broker there is no
verdict to give, and the caller answers 503/429.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import NoReturn

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from accounts.models import BrokerAccount, User
from tradedesk import rediscache
from tradedesk.broker import Broker, calendar, types
from tradedesk.broker.errors import OrderRejected
from tradedesk.symbols import SYMBOL_RE

from . import day_trades, selectors
from .models import Order, TradingHalt

# Fields a client may send in an order body (the API's and the ticket's names).
ORDER_FIELDS = (
    "symbol",
    "qty",
    "notional",
    "side",
    "type",
    "time_in_force",
    "limit_price",
    "stop_price",
    "trail_price",
    "trail_percent",
    "extended_hours",
    "client_order_id",
    "order_class",
    "take_profit",
    "stop_loss",
)

# Every code an Issue can carry, and what it means: the one place they are documented.
CODES: dict[str, str] = {
    # errors
    "qty_or_notional": "Give exactly one of qty (shares) and notional (dollars).",
    "invalid_number": "A number is not finite or is beyond 10^15.",
    "not_positive": "A quantity, amount or price is zero or negative.",
    "max_order_quantity": "qty is above the desk's MAX_ORDER_QUANTITY.",
    "too_many_decimals": "qty has more than 9 decimal places, or notional more than 2.",
    "invalid_symbol": "The symbol is not a ticker (1-5 capital letters, optional .class).",
    "unknown_symbol": "The broker knows no asset with this symbol.",
    "not_tradable": "The asset exists but cannot be traded now.",
    "not_fractionable": "A fractional or notional order for an asset traded in whole shares.",
    "invalid_choice": "side, type, time_in_force or order_class is not an allowed value.",
    "required": "A price the order type or order class needs is missing.",
    "not_applicable": "A price was given that this order type or leg does not use.",
    "trail_one_of": "A trailing stop needs exactly one of trail_price and trail_percent.",
    "sub_penny": "A price has more decimals than allowed: 2 at $1 and above, 4 below $1.",
    "fractional_market_day": "Fractional and notional orders must be simple market day orders.",
    "legs_need_order_class": "take_profit/stop_loss given on a simple order (use bracket/oto).",
    "complex_time_in_force": "Bracket, OCO and OTO orders need time_in_force day or gtc.",
    "oto_one_leg": "An OTO order needs exactly one of take_profit and stop_loss.",
    "leg_wrong_side": "A take-profit or stop-loss is on the wrong side of the entry price.",
    "trading_halted": "An operator halted trading for the desk, the user or the account.",
    "reducing_only": "An operator allows only orders that shrink an existing position.",
    "wash_trade": "The order could trade against the account's own open opposite order.",
    "extended_hours_limit_day": "extended_hours needs a limit order with time_in_force day.",
    "account_blocked": "The broker has blocked trading on this account.",
    "not_shortable": "The sell would open a short position that cannot be opened.",
    "insufficient_buying_power": "The order's estimated cost is above the buying power.",
    "max_position_size": "The resulting position would be worth more than MAX_POSITION_SIZE.",
    "max_daily_trades": "The user has already placed MAX_DAILY_TRADES orders today.",
    "broker_rejected": "The broker refused the order (its own message follows).",
    # warnings
    "market_closed": "The market is closed: the order queues until the next open.",
    "no_quote": "No current quote: the checks that need a price were skipped.",
    "buying_power_high": "The order uses more than BUYING_POWER_WARNING_PCT of buying power.",
    "price_far_from_market": "A limit/stop price is more than PRICE_WARNING_PCT from the quote.",
    "day_trade": "The order would complete a day trade (with today's and 5-day counts).",
    "pattern_day_trader": "PDT_RULE: 4th day trade in 5 business days with equity < $25,000.",
    # recommendations
    "bracket_order": "Consider a bracket order (take-profit and stop-loss with the entry).",
    "stop_loss": "Consider a stop-loss to limit the loss on the new position.",
}

# What the model's decimal columns hold (24 digits, 9 of them decimals).
MAX_NUMBER = Decimal(10) ** 15
QTY_DECIMALS = 9
PDT_EQUITY_MINIMUM = Decimal("25000")
PDT_DAY_TRADES = 4
# Prices each order type uses; any other price given is an error, not silently ignored.
PRICES_FOR_TYPE = {
    "market": (),
    "limit": ("limit_price",),
    "stop": ("stop_price",),
    "stop_limit": ("limit_price", "stop_price"),
    "trailing_stop": ("trail_price", "trail_percent"),
}
PRICE_NAMES = {
    "limit_price": "limit price",
    "stop_price": "stop price",
    "trail_price": "trail price",
    "trail_percent": "trail percent",
}
TYPE_NAMES = {
    "market": "A market order",
    "limit": "A limit order",
    "stop": "A stop order",
    "stop_limit": "A stop-limit order",
    "trailing_stop": "A trailing stop order",
}
COMPLEX_TIME_IN_FORCE = ("day", "gtc")
ZERO = Decimal("0")


@dataclass(frozen=True)
class Issue:
    code: str
    field: str | None
    message: str


@dataclass
class Verdict:
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    recommendations: list[Issue] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict:
        return {
            "valid": self.valid,
            "errors": [asdict(issue) for issue in self.errors],
            "warnings": [asdict(issue) for issue in self.warnings],
            "recommendations": [asdict(issue) for issue in self.recommendations],
        }


# A client's order, parsed (types checked) but not yet judged: the broker's request shape.
OrderInput = types.OrderRequest


class _Stop(Exception):
    """A hard error: later checks would only repeat or confuse it."""


# --- cached broker look-ups ----------------------------------------------------
_MISSING = object()


def _cached(key: str, load: Callable[[], object]) -> object:
    value = cache.get(key, _MISSING)
    if value is _MISSING:
        value = load()
        cache.set(key, value, settings.VALIDATION_CACHE_SECONDS)
    return value


@dataclass(frozen=True)
class AccountState:
    """The broker's account and positions (signed quantities, short < 0, by symbol), and
    when the broker was asked (`as_of_us`, epoch microseconds, taken before the call)."""

    account: types.Account
    positions: dict[str, Decimal]
    as_of_us: int


# Times in whole microseconds: the cache stores an integer as digits, which a Redis script
# can compare (a pickled float it cannot). The keys name the new shapes, so neither is read
# as the other.
def _account_key(broker_account: BrokerAccount) -> str:
    return f"validation:account-state:{broker_account.pk}"


def _changed_key(broker_account: BrokerAccount) -> str:
    return f"validation:account-changed-us:{broker_account.pk}"


def _now_us() -> int:
    return time.time_ns() // 1000


def _fresh(state: AccountState | None, changed: int | None) -> bool:
    """Whether `state` is a look that began after the desk's last command on the account
    (the mark `changed`): one that started before it is stale, even if stored after."""
    return state is not None and (changed is None or state.as_of_us > changed)


def _look(broker: Broker) -> AccountState:
    as_of_us = _now_us()
    account, positions = broker.get_account_and_positions()
    return AccountState(account=account, positions=_signed_positions(positions), as_of_us=as_of_us)


def cached_account_state(broker: Broker, broker_account: BrokerAccount) -> AccountState:
    """The account and its positions: one look, cached, but never older than the desk's last
    command on the account."""
    found = cache.get_many([_account_key(broker_account), _changed_key(broker_account)])
    state = found.get(_account_key(broker_account))
    if _fresh(state, found.get(_changed_key(broker_account))):
        return state
    state = _look(broker)
    cache.set(_account_key(broker_account), state, settings.VALIDATION_CACHE_SECONDS)
    return state


def current_account_state(
    broker: Broker, broker_account: BrokerAccount, looked: AccountState
) -> AccountState:
    """`looked` (read a moment ago, by prefetch) while no command on the account came after
    it began (one read, of the mark); else as cached_account_state."""
    if _fresh(looked, cache.get(_changed_key(broker_account))):
        return looked
    return cached_account_state(broker, broker_account)


def _signed_positions(positions: list[types.Position]) -> dict[str, Decimal]:
    return {
        position.symbol: abs(position.qty) if position.side == "long" else -abs(position.qty)
        for position in positions
    }


# The mark (`changed`) only moves forward. The cache has no compare-and-set: on Redis a
# script reads, compares and writes in one step; the other cache the desk runs on is the
# local-memory one, which lives in its process, so its writers taking turns on a lock of the
# process is enough.
_MARK_LOCK = threading.Lock()
# KEYS: the mark, the look. ARGV: the new mark, its expiry, the look as the cache stores it
# ('' when forgetting: a pickle is never empty), its expiry (0: not kept, as cache.set).
_MARK_SCRIPT = """
local stored = redis.call('GET', KEYS[1])
local ahead = (tonumber(stored) or -1) >= tonumber(ARGV[1])
local forget = ARGV[3] == ''
if ahead and not forget then return 0 end
redis.call('SET', KEYS[1], ahead and stored or ARGV[1], 'EX', ARGV[2])
if forget or tonumber(ARGV[4]) == 0 then
  redis.call('DEL', KEYS[2])
else
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
end
return 1
"""


def _move_mark(broker_account: BrokerAccount, mark_us: int, state: AccountState | None) -> None:
    """Set the mark to `mark_us` with the look that goes with it (`state`), unless the mark
    stands there or later already: then nothing is stored. Without a look (None), the cached
    one is dropped either way, and a mark already later keeps its place."""
    # The mark is kept well past the cache's lifetime: a look in flight now is stored after it.
    mark_seconds = settings.VALIDATION_CACHE_SECONDS + 60
    mark_key, state_key = _changed_key(broker_account), _account_key(broker_account)
    redis = rediscache.redis_cache()
    if redis is not None:
        rediscache.run(
            redis,
            _MARK_SCRIPT,
            [mark_key, state_key],
            [
                mark_us,
                redis.get_backend_timeout(mark_seconds),
                b"" if state is None else rediscache.serialized(redis, state),
                redis.get_backend_timeout(settings.VALIDATION_CACHE_SECONDS),
            ],
        )
        return
    with _MARK_LOCK:
        stored = cache.get(mark_key)
        ahead = stored is not None and stored >= mark_us
        if ahead and state is not None:
            return
        cache.set(mark_key, stored if ahead else mark_us, mark_seconds)
        if state is None:
            cache.delete(state_key)
        else:
            cache.set(state_key, state, settings.VALIDATION_CACHE_SECONDS)


def remember_account_state(
    broker_account: BrokerAccount,
    account: types.Account,
    positions: list[types.Position],
    as_of: float,
) -> None:
    """A command's broker told the account as the command left it, final at `as_of` (epoch
    s, once committed): keep that as the look (the next check needs no broker call), and,
    like forget_account_state, make looks that started before it stale. A mark already past
    `as_of` (another command, or a forget, came after) keeps its place: nothing is stored."""
    mark_us = math.ceil(as_of * 1_000_000)  # rounded up: a look at the same instant is stale
    # Newer than the mark it sets: a look counts only if it began after one.
    state = AccountState(
        account=account, positions=_signed_positions(positions), as_of_us=mark_us + 1
    )
    _move_mark(broker_account, mark_us, state)


def account_changed(broker: Broker, broker_account: BrokerAccount) -> None:
    """A command went through `broker`: keep what it told of the account, else forget."""
    known = broker.account_after_submit()
    if known is None:
        forget_account_state(broker_account)
    else:
        remember_account_state(broker_account, *known)


def forget_account_state(broker_account: BrokerAccount) -> None:
    """An order changed the account at the broker: looks that started before now are stale."""
    _move_mark(broker_account, _now_us(), None)


@dataclass(frozen=True)
class Prefetched:
    """One check's broker look-ups, read before the caller's lock: the account (checked
    against its mark again once the check has read the desk's orders), the asset (None: the
    broker knows no such symbol) and the quote (None: none). For a symbol that is no ticker
    (refused before either is needed) both are None."""

    account_state: AccountState
    asset: types.Asset | None
    quote: types.Quote | None
    # The user's kept count of the day's orders (selectors.PlacedCount, None: none kept),
    # read in the same cache call; absent when prefetch was not told the user.
    placed_count: object = selectors.UNREAD


def prefetch(
    broker: Broker, broker_account: BrokerAccount, symbol: str, user: User | None = None
) -> Prefetched:
    """The broker look-ups a check needs, so the gate's lock waits on no broker call: one
    cache read for all of them (and `user`'s kept count of the day's orders); the ones
    missing (or stale) asked of the broker and stored in one cache call."""
    state_key, changed_key = _account_key(broker_account), _changed_key(broker_account)
    asset_key, quote_key = _asset_key(broker, symbol), _quote_key(broker, symbol)
    placed_key = selectors.placed_count_key(user.pk) if user is not None else None
    ticker = SYMBOL_RE.fullmatch(symbol) is not None
    found = cache.get_many(
        [
            state_key,
            changed_key,
            *((asset_key, quote_key) if ticker else ()),
            *((placed_key,) if placed_key else ()),
        ]
    )
    loaded: dict[str, object] = {}
    state = found.get(state_key)
    if not _fresh(state, found.get(changed_key)):
        state = loaded[state_key] = _look(broker)
    if ticker and asset_key not in found:
        loaded[asset_key] = _asset_at(broker, symbol)
    if ticker and quote_key not in found:
        loaded[quote_key] = _quote_at(broker, symbol)
    if loaded:
        cache.set_many(loaded, settings.VALIDATION_CACHE_SECONDS)
    values = {**found, **loaded}
    return Prefetched(
        account_state=state,
        asset=values.get(asset_key),
        quote=values.get(quote_key),
        placed_count=found.get(placed_key) if placed_key else selectors.UNREAD,
    )


def _asset_key(broker: Broker, symbol: str) -> str:
    return f"validation:asset:{broker.provider}:{symbol}"


def _asset_at(broker: Broker, symbol: str) -> types.Asset | None:
    try:
        return broker.get_asset(symbol)
    except OrderRejected:
        return None


def cached_asset(broker: Broker, symbol: str) -> types.Asset | None:
    """The asset, or None when the broker knows no such symbol."""
    return _cached(_asset_key(broker, symbol), lambda: _asset_at(broker, symbol))


def _quote_key(broker: Broker, symbol: str) -> str:
    return f"validation:quote:{broker.provider}:{symbol}"


def _quote_at(broker: Broker, symbol: str) -> types.Quote | None:
    return broker.get_latest_quotes([symbol]).get(symbol)


def cached_quote(broker: Broker, symbol: str) -> types.Quote | None:
    return _cached(_quote_key(broker, symbol), lambda: _quote_at(broker, symbol))


# --- helpers -----------------------------------------------------------------
def _dollars(value: Decimal) -> str:
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:,.4f}"


def _shares(value: Decimal) -> str:
    """A quantity as a trader writes it: 3, 2.5 (not 3.000000000 or 1E+2)."""
    return f"{value.normalize():f}"


def _decimals(value: Decimal) -> int:
    return max(0, -value.normalize().as_tuple().exponent)


def _is_fractional(value: Decimal) -> bool:
    return value != value.to_integral_value()


def _leg(value: object) -> types.LegRequest | None:
    """A leg that carries a price; an empty leg is no leg."""
    if isinstance(value, types.LegRequest) and (
        value.limit_price is not None or value.stop_price is not None
    ):
        return value
    return None


def _market_open(broker: Broker, now: datetime) -> bool:
    return broker.is_market_open(now)


@dataclass
class _Check:
    """One validation run: the order, who places it where, and what has been looked up."""

    order: OrderInput
    broker: Broker
    user: User
    broker_account: BrokerAccount
    now: datetime
    # The open order a replace would replace: judged without it (its legs and parent too).
    replacing: Order | None = None
    halts: list[TradingHalt] | None = None
    prefetched: Prefetched | None = None
    verdict: Verdict = field(default_factory=Verdict)
    asset: types.Asset | None = None

    def error(self, code: str, field_name: str | None, message: str) -> NoReturn:
        self.verdict.errors.append(Issue(code, field_name, message))
        raise _Stop

    def warn(self, code: str, field_name: str | None, message: str) -> None:
        self.verdict.warnings.append(Issue(code, field_name, message))

    def recommend(self, code: str, field_name: str | None, message: str) -> None:
        self.verdict.recommendations.append(Issue(code, field_name, message))

    @property
    def amount_field(self) -> str:
        return "qty" if self.order.qty is not None else "notional"

    @property
    def fractional_or_notional(self) -> bool:
        return self.order.notional is not None or _is_fractional(self.order.qty)

    @property
    def complex_long(self) -> bool:
        """Whether the order's legs protect a long position (else a short)."""
        if self.order.order_class == "oco":  # an OCO is the exit itself
            return self.order.side == "sell"
        return self.order.side == "buy"

    @cached_property
    def quote(self) -> types.Quote | None:
        if self.prefetched is not None:
            return self.prefetched.quote
        return cached_quote(self.broker, self.order.symbol)

    @property
    def account(self) -> types.Account:
        return self.account_state.account

    @property
    def positions(self) -> dict[str, Decimal]:
        return self.account_state.positions

    @cached_property
    def account_state(self) -> AccountState:
        # The desk's orders first: an order confirmed after that read is then in the
        # account read after it (a command's account change is kept or forgotten before its
        # answer is recorded), so no order escapes both and none is missed.
        _ = self.book
        if self.prefetched is not None:
            return current_account_state(
                self.broker, self.broker_account, self.prefetched.account_state
            )
        return cached_account_state(self.broker, self.broker_account)

    @property
    def position(self) -> Decimal:
        return self.positions.get(self.order.symbol, ZERO)

    @cached_property
    def active_halts(self) -> list[TradingHalt]:
        if self.halts is not None:
            return self.halts
        return selectors.active_trading_halts(self.user, self.broker_account)

    def counts_as_exposure(self, other: Order) -> bool:
        """Whether an open order of the account is exposure this order is judged against.

        Pending orders not yet at the broker count (the desk placed them), orders waiting for
        approval too (their expiry ends them); an unconfirmed order older than
        ORDER_PENDING_TIMEOUT is the reconciler's to resolve and blocks nothing; the order
        being replaced and its own legs and parent are not the would-be order's rivals.
        """
        if self.replacing is not None:
            family = self.replacing.parent_id or self.replacing.pk
            if family in (other.pk, other.parent_id):
                return False
        if other.is_unconfirmed:
            timeout = timedelta(seconds=settings.ORDER_PENDING_TIMEOUT)
            return other.created_at is None or other.created_at >= self.now - timeout
        return True

    @cached_property
    def book(self) -> tuple[list[Order], int]:
        """The account's open orders in the symbol or unconfirmed, and the orders the user
        placed today (one read)."""
        today = self.now.astimezone(calendar.market_zone()).date()
        return selectors.exposure_and_placed_today(
            self.broker_account,
            self.order.symbol,
            self.user,
            day_trades.day_start(today),
            self.prefetched.placed_count if self.prefetched is not None else selectors.UNREAD,
        )

    @cached_property
    def exposure_orders(self) -> list[Order]:
        """The account's open orders that count as exposure: in the symbol, or unconfirmed."""
        return [other for other in self.book[0] if self.counts_as_exposure(other)]

    @property
    def open_orders(self) -> list[Order]:
        """The account's open orders in the symbol that count as exposure."""
        return [other for other in self.exposure_orders if other.symbol == self.order.symbol]

    @cached_property
    def pending_same_side(self) -> Decimal:
        """Shares still to trade in the account's open orders on this order's side. An order
        with a replace under way trades as itself or as its replacement, never both: the
        pair counts once, as the larger."""
        same_side = [other for other in self.open_orders if other.side == self.order.side]
        confirmed = {other.broker_order_id: other for other in same_side if other.broker_order_id}
        replacing = {
            other.replaces: other
            for other in same_side
            if not other.broker_order_id and other.replaces in confirmed
        }
        total = ZERO
        for other in same_side:
            if other.broker_order_id in replacing:
                continue  # counted with its replacement
            remaining = _remaining(other)
            if other.replaces and replacing.get(other.replaces) is other:
                remaining = max(remaining, _remaining(confirmed[other.replaces]))
            total += remaining
        return total

    @cached_property
    def buying_power(self) -> Decimal:
        """The broker's buying power, less what desk orders not yet at the broker will spend,
        plus what the replaced order holds back now (a replace pays for the increase only)."""
        unreserved = sum(
            (
                _open_buy_cost(other, self.quote_for)
                for other in self.exposure_orders
                if not other.broker_order_id
            ),
            ZERO,
        )
        released = ZERO
        if self.replacing is not None and self.replacing.broker_order_id:
            released = _open_buy_cost(self.replacing, self.quote_for)
        return max(ZERO, self.account.buying_power - unreserved + released)

    def quote_for(self, symbol: str) -> types.Quote | None:
        return self.quote if symbol == self.order.symbol else cached_quote(self.broker, symbol)

    @cached_property
    def market_open(self) -> bool:
        return _market_open(self.broker, self.now)

    @property
    def trades_now(self) -> bool:
        return self.market_open or (
            self.order.extended_hours and calendar.is_extended_session(self.now)
        )

    @property
    def market_price(self) -> Decimal | None:
        return market_price(self.order, self.quote)

    @property
    def price(self) -> Decimal | None:
        return expected_price(self.order, self.quote)

    @property
    def qty(self) -> Decimal | None:
        """Shares: the order's qty, or its notional at the market price."""
        if self.order.qty is not None:
            return self.order.qty
        price = self.market_price
        return self.order.notional / price if price else None


def market_price(order: OrderInput, quote: types.Quote | None) -> Decimal | None:
    """Where a market order would trade now: the ask for a buy, the bid for a sell."""
    if quote is None:
        return None
    price = quote.ask_price if order.side == "buy" else quote.bid_price
    return price if price > 0 else None


def expected_price(order: OrderInput, quote: types.Quote | None) -> Decimal | None:
    """The price the order is expected to trade at: its limit, its stop, else the market."""
    return order.limit_price or order.stop_price or market_price(order, quote)


def _check_number(check: _Check, value: Decimal | None, field_name: str, label: str) -> None:
    if value is None:
        return
    if not value.is_finite() or abs(value) >= MAX_NUMBER:
        check.error("invalid_number", field_name, f"The {label} must be a number below 10^15.")
    if value <= 0:
        check.error("not_positive", field_name, f"The {label} must be greater than zero.")


def _check_price(check: _Check, value: Decimal | None, field_name: str, label: str) -> None:
    _check_number(check, value, field_name, label)
    if value is None:
        return
    allowed = 2 if value >= 1 else 4
    if _decimals(value) > allowed:
        check.error(
            "sub_penny",
            field_name,
            f"The {label} {value} has too many decimals: prices from $1 up take at most 2, "
            "below $1 at most 4.",
        )


# --- 1. quantity ---------------------------------------------------------------
def _quantity(check: _Check) -> None:
    order = check.order
    if (order.qty is None) == (order.notional is None):
        check.error(
            "qty_or_notional",
            "qty",
            "Give either a quantity of shares or a dollar amount (notional), not both.",
        )
    if order.qty is not None:
        _check_number(check, order.qty, "qty", "quantity")
        if order.qty > settings.MAX_ORDER_QUANTITY:
            check.error(
                "max_order_quantity",
                "qty",
                f"{_shares(order.qty)} shares is above the desk's limit of "
                f"{settings.MAX_ORDER_QUANTITY:,} shares per order.",
            )
        if _decimals(order.qty) > QTY_DECIMALS:
            check.error("too_many_decimals", "qty", "A quantity takes at most 9 decimal places.")
    else:
        _check_number(check, order.notional, "notional", "dollar amount")
        if _decimals(order.notional) > 2:
            check.error(
                "too_many_decimals", "notional", "A dollar amount takes at most 2 decimals."
            )


# --- 2. symbol -----------------------------------------------------------------
def _symbol(check: _Check) -> None:
    symbol = check.order.symbol
    if not SYMBOL_RE.fullmatch(symbol):
        check.error("invalid_symbol", "symbol", "Use a ticker like AAPL or BRK.B.")
    asset = (
        check.prefetched.asset
        if check.prefetched is not None
        else cached_asset(check.broker, symbol)
    )
    if asset is None:
        check.error("unknown_symbol", "symbol", f"{symbol} is not a known asset.")
    if not asset.tradable or asset.status != "active":
        check.error("not_tradable", "symbol", f"{symbol} cannot be traded right now.")
    if check.fractional_or_notional and not asset.fractionable:
        check.error(
            "not_fractionable",
            check.amount_field,
            f"{symbol} trades in whole shares only: give a whole number of shares.",
        )
    check.asset = asset


# --- 3. side -------------------------------------------------------------------
def _choice(check: _Check, field_name: str, allowed: tuple[str, ...]) -> None:
    value = getattr(check.order, field_name)
    if value not in allowed:
        check.error(
            "invalid_choice",
            field_name,
            f"{field_name.replace('_', ' ').capitalize()} must be one of: {', '.join(allowed)}.",
        )


# --- 4. type, prices, time in force, order class ----------------------------------
def _type_and_prices(check: _Check) -> None:
    order = check.order
    _choice(check, "type", types.ORDER_TYPES)
    uses = PRICES_FOR_TYPE[order.type]
    for name, label in PRICE_NAMES.items():
        if getattr(order, name) is not None and name not in uses:
            check.error(
                "not_applicable", name, f"{TYPE_NAMES[order.type]} takes no {label}; remove it."
            )
    if order.type == "trailing_stop":
        if (order.trail_price is None) == (order.trail_percent is None):
            check.error(
                "trail_one_of",
                "trail_price",
                "A trailing stop needs either a trail price or a trail percent, not both.",
            )
    else:
        for name in uses:
            if getattr(order, name) is None:
                check.error(
                    "required", name, f"{TYPE_NAMES[order.type]} needs a {PRICE_NAMES[name]}."
                )
    for name in ("limit_price", "stop_price", "trail_price"):
        _check_price(check, getattr(order, name), name, PRICE_NAMES[name])
    _check_number(check, order.trail_percent, "trail_percent", "trail percent")


def _time_in_force(check: _Check) -> None:
    _choice(check, "time_in_force", types.TIME_IN_FORCE)
    _choice(check, "order_class", types.ORDER_CLASSES)
    order = check.order
    if check.fractional_or_notional:
        wrong = (
            ("type", order.type != "market"),
            ("time_in_force", order.time_in_force != "day"),
            ("order_class", order.order_class != "simple"),
        )
        for field_name, is_wrong in wrong:
            if is_wrong:
                check.error(
                    "fractional_market_day",
                    field_name,
                    "Fractional and dollar-amount orders must be simple market orders for the "
                    "day (type market, time in force day, no bracket).",
                )


def _order_class(check: _Check) -> None:
    order = check.order
    take_profit, stop_loss = _leg(order.take_profit), _leg(order.stop_loss)
    if take_profit is not None:
        if take_profit.stop_price is not None:
            check.error("not_applicable", "take_profit", "A take-profit takes only a limit price.")
        _check_price(check, take_profit.limit_price, "take_profit", "take-profit limit price")
    if stop_loss is not None:
        _check_price(check, stop_loss.stop_price, "stop_loss", "stop-loss stop price")
        _check_price(check, stop_loss.limit_price, "stop_loss", "stop-loss limit price")

    if order.order_class == "simple":
        for name, leg in (("take_profit", take_profit), ("stop_loss", stop_loss)):
            if leg is not None:
                check.error(
                    "legs_need_order_class",
                    name,
                    "A simple order places no take-profit or stop-loss: choose order class "
                    "bracket (both) or oto (one).",
                )
        return
    if order.time_in_force not in COMPLEX_TIME_IN_FORCE:
        check.error(
            "complex_time_in_force",
            "time_in_force",
            f"A {order.order_class} order takes time in force day or gtc.",
        )
    if order.order_class == "oto":
        if (take_profit is None) == (stop_loss is None):
            check.error(
                "oto_one_leg",
                "take_profit",
                "A one-triggers-other order needs either a take-profit or a stop-loss, not both.",
            )
    else:
        if take_profit is None or take_profit.limit_price is None:
            check.error(
                "required",
                "take_profit",
                f"A {order.order_class} order needs a take-profit limit price.",
            )
        if stop_loss is None or stop_loss.stop_price is None:
            check.error(
                "required",
                "stop_loss",
                f"A {order.order_class} order needs a stop-loss stop price.",
            )
    _legs_on_the_right_side(check, take_profit, stop_loss)


def _legs_on_the_right_side(
    check: _Check, take_profit: types.LegRequest | None, stop_loss: types.LegRequest | None
) -> None:
    order = check.order
    if order.order_class == "oco":
        base = check.quote.mid if check.quote is not None else None
        base_label = "market price"
    else:
        base = check.price
        base_label = "entry price"
    if base is None:
        return
    long = check.complex_long
    above, below = ("above", "below") if long else ("below", "above")
    position = "long" if long else "short"
    if take_profit is not None and take_profit.limit_price is not None:
        wrong = take_profit.limit_price <= base if long else take_profit.limit_price >= base
        if wrong:
            check.error(
                "leg_wrong_side",
                "take_profit",
                f"The take-profit ({_dollars(take_profit.limit_price)}) must be {above} the "
                f"{base_label} ({_dollars(base)}) for a {position} position.",
            )
    if stop_loss is not None and stop_loss.stop_price is not None:
        wrong = stop_loss.stop_price >= base if long else stop_loss.stop_price <= base
        if wrong:
            check.error(
                "leg_wrong_side",
                "stop_loss",
                f"The stop-loss ({_dollars(stop_loss.stop_price)}) must be {below} the "
                f"{base_label} ({_dollars(base)}) for a {position} position.",
            )


# --- kill switch and wash-trade guard ---------------------------------------------
def _halt_target(halt: TradingHalt) -> str:
    if halt.scope == TradingHalt.SCOPE_USER:
        return "you"
    if halt.scope == TradingHalt.SCOPE_BROKER_ACCOUNT:
        return f"the account {halt.broker_account.label}"
    return "the whole desk"


def _remaining(order: Order) -> Decimal:
    return order.qty - order.filled_qty if order.qty is not None else ZERO


def _open_buy_cost(order: Order, quote_for: Callable[[str], types.Quote | None]) -> Decimal:
    """What an open buy still spends: its notional, else what is left at its limit or stop
    price, else at the ask (as brokers hold buying power back for open orders)."""
    if order.side != "buy":
        return ZERO
    if order.qty is None:
        return order.notional or ZERO
    price = order.limit_price or order.stop_price
    if price is None:
        quote = quote_for(order.symbol)
        price = quote.ask_price if quote is not None else ZERO
    return _remaining(order) * price


def halt_refusal(halts: list[TradingHalt]) -> Issue | None:
    """The error a `halted` kill switch among `halts` gives every order, or None."""
    halted = [halt for halt in halts if halt.mode == TradingHalt.MODE_HALTED]
    if not halted:
        return None
    halt = halted[0]
    return Issue(
        "trading_halted",
        None,
        f"Trading is halted for {_halt_target(halt)}: {halt.reason}. No new orders are accepted.",
    )


def _halted(check: _Check) -> None:
    refusal = halt_refusal(check.active_halts)
    if refusal is not None:
        check.error(refusal.code, refusal.field, refusal.message)


def _reducing(check: _Check) -> None:
    halts = check.active_halts
    if not halts:
        return
    halt = halts[0]
    target = _halt_target(halt)
    order, held = check.order, check.position
    # What is left to reduce once the open orders on the same side have done their part.
    pending = check.pending_same_side
    reducible = max(held, ZERO) if order.side == "sell" else max(-held, ZERO)
    room = reducible - pending
    qty = check.qty
    if qty is None or qty > room:
        position = (
            f"{_shares(abs(held))} {order.symbol} {'long' if held > 0 else 'short'}"
            if held
            else f"no {order.symbol} position"
        )
        pending_note = (
            f", with {_shares(pending)} already in open {order.side} orders" if pending else ""
        )
        check.error(
            "reducing_only",
            check.amount_field,
            f"Only orders that reduce a position are accepted for {target} ({halt.reason}). "
            f"You hold {position}{pending_note}: this {order.side} would not only reduce it.",
        )


def _limit_of(order: Order | OrderInput) -> Decimal | None:
    """The limit price that bounds where the order trades; None if it can trade anywhere."""
    return order.limit_price if order.type in ("limit", "stop_limit") else None


def _could_cross(order: OrderInput, other: Order) -> bool:
    mine, theirs = _limit_of(order), _limit_of(other)
    if mine is None or theirs is None:
        return True
    return mine >= theirs if order.side == "buy" else mine <= theirs


def _wash_trade(check: _Check) -> None:
    order = check.order
    for other in check.open_orders:
        if other.side == order.side or not _could_cross(order, other):
            continue
        price = f" at {_dollars(other.limit_price)}" if _limit_of(other) is not None else ""
        amount = (
            f"{_shares(_remaining(other))} shares"
            if other.qty is not None
            else _dollars(other.notional)
        )
        check.error(
            "wash_trade",
            "limit_price" if _limit_of(order) is not None else "side",
            f"This {order.side} could trade against your own open {other.side} order "
            f"#{other.pk} (client order id {other.client_order_id}: {other.type} "
            f"{other.side}{price}, {amount} of {other.symbol}). "
            "Cancel or change that order first, or use a bracket/OCO order.",
        )


# --- 5. market hours ---------------------------------------------------------------
def _market_hours(check: _Check) -> None:
    order = check.order
    if order.extended_hours and (order.type != "limit" or order.time_in_force != "day"):
        check.error(
            "extended_hours_limit_day",
            "extended_hours",
            "Extended-hours trading takes only limit orders with time in force day.",
        )
    if check.trades_now:
        return
    next_open = calendar.next_open(check.now).astimezone(calendar.market_zone())
    check.warn(
        "market_closed",
        None,
        "The market is closed: this order will wait until the next open, "
        f"{next_open:%A %d %B %Y at %H:%M} New York time.",
    )


# --- 6. buying power -----------------------------------------------------------------
def _buying_power(check: _Check) -> None:
    order, account = check.order, check.account
    if account.trading_blocked:
        check.error("account_blocked", None, "The broker has blocked trading on this account.")
    if check.quote is None:
        check.warn(
            "no_quote",
            "symbol",
            f"There is no current quote for {order.symbol}: the buying-power, price and "
            "position checks that need a price were skipped.",
        )
    qty, price = check.qty, check.price
    if qty is None or price is None:
        return
    held = check.position
    short_qty = max(ZERO, qty - max(held, ZERO)) if order.side == "sell" else ZERO
    if short_qty and (
        not check.asset.shortable or not account.shorting_enabled or _is_fractional(qty)
    ):
        check.error(
            "not_shortable",
            check.amount_field,
            f"You hold {_shares(max(held, ZERO))} {order.symbol}: selling {_shares(qty)} would "
            f"open a short position, and {order.symbol} cannot be sold short here"
            f"{' in fractional shares' if _is_fractional(qty) else ''}.",
        )
    if order.side == "buy":
        cost = order.notional if order.notional is not None else qty * price
    else:
        cost = short_qty * price
    if cost <= 0:
        return
    buying_power = check.buying_power
    if cost > buying_power:
        check.error(
            "insufficient_buying_power",
            check.amount_field,
            f"This order needs about {_dollars(cost)} but your buying power is "
            f"{_dollars(buying_power)}.",
        )
    used = cost / buying_power * 100
    if used > settings.BUYING_POWER_WARNING_PCT:
        check.warn(
            "buying_power_high",
            check.amount_field,
            f"This order uses {used:.0f}% of your buying power "
            f"({_dollars(cost)} of {_dollars(buying_power)}).",
        )


# --- 7. price reasonability ----------------------------------------------------------
def _price_reasonability(check: _Check) -> None:
    if check.quote is None or check.quote.mid <= 0:
        return
    market = check.quote.mid
    for name in ("limit_price", "stop_price"):
        price = getattr(check.order, name)
        if price is None:
            continue
        away = (price - market) / market * 100
        if abs(away) > settings.PRICE_WARNING_PCT:
            check.warn(
                "price_far_from_market",
                name,
                f"The {PRICE_NAMES[name]} {_dollars(price)} is {abs(away):.1f}% "
                f"{'above' if away > 0 else 'below'} the market ({_dollars(market)}).",
            )


# --- 8. day trading ------------------------------------------------------------------
def _ordinal(number: int) -> str:
    suffix = (
        "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    )
    return f"{number}{suffix}"


def _day_trading(check: _Check) -> None:
    order, qty = check.order, check.qty
    if qty is None:
        return
    counted = day_trades.count_with_order(
        broker_account=check.broker_account,
        positions=check.positions,
        symbol=order.symbol,
        side=order.side,
        qty=qty,
        day=day_trades.trading_day(check.now, trades_now=check.trades_now),
    )
    if not counted.completes:
        return
    opened = "bought" if order.side == "sell" else "sold short"
    check.warn(
        "day_trade",
        "side",
        f"This {order.side} closes {order.symbol} {opened} the same day: a day trade. "
        f"That makes {counted.today} today and {counted.window} in the last "
        f"{day_trades.BUSINESS_DAYS} business days.",
    )
    if (
        settings.PDT_RULE
        and counted.window >= PDT_DAY_TRADES
        and check.account.equity < PDT_EQUITY_MINIMUM
    ):
        check.warn(
            "pattern_day_trader",
            "side",
            f"This would be your {_ordinal(counted.window)} day trade in "
            f"{day_trades.BUSINESS_DAYS} business days with equity of "
            f"{_dollars(check.account.equity)}, under $25,000: the account would be flagged as a "
            "pattern day trader.",
        )


# --- 9. desk limits ------------------------------------------------------------------
def _desk_limits(check: _Check) -> None:
    order = check.order
    qty, price = check.qty, check.price
    if qty is not None and price is not None:
        # The position as it would be once this order and the open ones on its side trade.
        sign = 1 if order.side == "buy" else -1
        projected = check.position + sign * check.pending_same_side
        resulting = projected + sign * qty
        value = abs(resulting) * price
        if abs(resulting) > abs(projected) and value > settings.MAX_POSITION_SIZE:
            pending = check.pending_same_side
            pending_note = (
                f" (with {_shares(pending)} shares in open {order.side} orders)" if pending else ""
            )
            check.error(
                "max_position_size",
                check.amount_field,
                f"The resulting {order.symbol} position{pending_note} would be worth about "
                f"{_dollars(value)}, above the desk's limit of "
                f"{_dollars(settings.MAX_POSITION_SIZE)} per symbol.",
            )
    if check.replacing is not None:
        return  # a replace changes an order already counted today
    _, placed = check.book
    if placed >= settings.MAX_DAILY_TRADES:
        check.error(
            "max_daily_trades",
            None,
            f"You have placed {placed} orders today, the desk's daily limit of "
            f"{settings.MAX_DAILY_TRADES}.",
        )


# --- recommendations -----------------------------------------------------------------
def _recommendations(check: _Check) -> None:
    order = check.order
    if order.side != "buy" or check.position < 0:  # only for buys that open or add to a long
        return
    has_stop_loss = _leg(order.stop_loss) is not None
    if order.order_class == "simple" and not check.fractional_or_notional:
        check.recommend(
            "bracket_order",
            "order_class",
            "Consider a bracket order: a take-profit and a stop-loss placed with the entry, "
            "so the exit is planned before the trade.",
        )
    if not has_stop_loss:
        check.recommend(
            "stop_loss",
            "stop_loss",
            "Consider a stop-loss to cap the loss if the price falls.",
        )


def validate_order(
    order: OrderInput,
    *,
    broker: Broker,
    user: User,
    broker_account: BrokerAccount,
    now: datetime | None = None,
    replacing: Order | None = None,
    halts: list[TradingHalt] | None = None,
    prefetched: Prefetched | None = None,
) -> Verdict:
    """Judge `order` in the gate's order: kill switch, shape, desk limits, buying power,
    wash trade, warnings. With `replacing`, `order` is what that open order would become.
    `halts` are the active kill switches when the caller has read them already, `prefetched`
    the broker look-ups (prefetch for `order`'s symbol): not read from the cache again."""
    check = _Check(
        order=order,
        broker=broker,
        user=user,
        broker_account=broker_account,
        now=now or timezone.now(),
        replacing=replacing,
        halts=halts,
        prefetched=prefetched,
    )
    try:
        _halted(check)
        _quantity(check)
        _symbol(check)
        _choice(check, "side", types.ORDER_SIDES)
        _type_and_prices(check)
        _time_in_force(check)
        _order_class(check)
        _market_hours(check)
        _reducing(check)
        _desk_limits(check)
        _buying_power(check)
        _wash_trade(check)
        _price_reasonability(check)
        _day_trading(check)
        if replacing is None:
            _recommendations(check)
    except _Stop:
        pass
    return check.verdict
