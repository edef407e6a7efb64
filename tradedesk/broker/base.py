"""The one interface every broker implements (the paper exchange and Alpaca)."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import datetime
from typing import Protocol, TypeVar

from .types import (
    Account,
    Asset,
    Bar,
    BrokerOrder,
    CancelResult,
    Clock,
    ClosePositionResult,
    FeeActivity,
    FillActivity,
    KeyProblem,
    OrderRequest,
    OrderUpdate,
    Position,
    Quote,
    ReplaceRequest,
    Trade,
)


class Broker(abc.ABC):
    """A broker account's trading and market-data operations.

    Every method raises only the errors in `tradedesk.broker.errors`.
    """

    provider: str

    # --- provider capabilities -------------------------------------------
    def is_market_open(self, at: datetime) -> bool:
        """Whether this broker takes market-hours orders at `at`: NYSE's regular session
        (the paper exchange's demo setting may keep it open around the clock)."""
        from . import calendar  # pandas and the NYSE calendar: loaded when first needed

        return calendar.is_regular_session(at)

    @classmethod
    def key_problem(cls, *, key_id: str | None, secret: str | None) -> KeyProblem | None:
        """What is wrong with a key id or secret given for linking (None: nothing), judged
        before any broker call; a key id or secret of None is not judged. None by default."""
        return None

    @classmethod
    def periodic_work(cls) -> int:
        """Provider-wide work that must run on a schedule (the factory's periodic_work());
        returns how many accounts it touched. Nothing by default."""
        return 0

    # --- account -------------------------------------------------------
    @abc.abstractmethod
    def get_account(self) -> Account: ...

    @abc.abstractmethod
    def get_clock(self) -> Clock: ...

    @abc.abstractmethod
    def get_asset(self, symbol: str) -> Asset:
        """Raises OrderRejected (code 40410000-like, http 404) for an unknown symbol."""

    @abc.abstractmethod
    def list_assets(self) -> list[Asset]:
        """The active US equities the broker trades."""

    @abc.abstractmethod
    def list_positions(self) -> list[Position]: ...

    def get_account_and_positions(self) -> tuple[Account, list[Position]]:
        """The account and its positions together; a broker that can overrides it to look once."""
        return self.get_account(), self.list_positions()

    @abc.abstractmethod
    def list_fill_activities(
        self,
        *,
        after: datetime | None = None,
        until: datetime | None = None,
        direction: str = "desc",
        page_size: int = 100,
        page_token: str | None = None,
    ) -> list[FillActivity]:
        """One page of the account's executions (Alpaca's FILL activities), by time.

        `page_token` is the id of the last activity of the previous page: the page continues
        after it in `direction`. At most 100 a page.
        """

    def iter_fill_activities(
        self,
        *,
        after: datetime | None = None,
        until: datetime | None = None,
        direction: str = "desc",
        page_size: int = 100,
    ) -> Iterator[FillActivity]:
        """Every execution in the window, page after page, each once."""
        return every_page(
            self.list_fill_activities,
            after=after,
            until=until,
            direction=direction,
            page_size=page_size,
        )

    def list_fee_activities(
        self,
        *,
        after: datetime | None = None,
        until: datetime | None = None,
        direction: str = "desc",
        page_size: int = 100,
        page_token: str | None = None,
    ) -> list[FeeActivity]:
        """One page of the fees the broker charged the account (Alpaca's FEE and PTC
        activities), by date, paged as `list_fill_activities` is.

        None by default: a broker that charges no fees (the paper exchange) reports none.
        """
        return []

    def iter_fee_activities(
        self,
        *,
        after: datetime | None = None,
        until: datetime | None = None,
        direction: str = "desc",
        page_size: int = 100,
    ) -> Iterator[FeeActivity]:
        """Every fee in the window, page after page, each once."""
        return every_page(
            self.list_fee_activities,
            after=after,
            until=until,
            direction=direction,
            page_size=page_size,
        )

    # --- orders --------------------------------------------------------
    @abc.abstractmethod
    def submit_order(self, request: OrderRequest) -> BrokerOrder: ...

    def account_after_submit(self) -> tuple[Account, list[Position], float] | None:
        """The account and positions as this object's last submit_order left them, and when
        that was final (epoch s, once committed), when the broker knew them without being
        asked again (the paper exchange held them under its lock); None: ask
        (get_account_and_positions)."""
        return None

    @abc.abstractmethod
    def get_order(self, order_id: str) -> BrokerOrder: ...

    @abc.abstractmethod
    def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder: ...

    @abc.abstractmethod
    def list_orders(
        self,
        *,
        status: str = "all",
        after: datetime | None = None,
        until: datetime | None = None,
        limit: int = 500,
        direction: str = "asc",
        symbols: Iterable[str] | None = None,
    ) -> list[BrokerOrder]:
        """One page of orders (by submission time), legs nested in their parent."""

    @abc.abstractmethod
    def cancel_order(self, order_id: str) -> None: ...

    @abc.abstractmethod
    def replace_order(self, order_id: str, request: ReplaceRequest) -> BrokerOrder:
        """Returns the NEW order; the old one becomes `replaced`."""

    @abc.abstractmethod
    def cancel_all_orders(self) -> list[CancelResult]:
        """Ask to cancel every open order: one result per order, refusals included."""

    @abc.abstractmethod
    def close_position(self, symbol: str) -> BrokerOrder:
        """Place the market order that closes the whole position in `symbol`.

        Raises OrderRejected (http 404) when there is no such position.
        """

    @abc.abstractmethod
    def close_all_positions(self, *, cancel_orders: bool = False) -> list[ClosePositionResult]:
        """Close every position (after canceling every open order, if asked): one result each."""

    # --- market data ---------------------------------------------------
    @abc.abstractmethod
    def get_latest_quotes(self, symbols: Iterable[str]) -> dict[str, Quote]: ...

    @abc.abstractmethod
    def get_latest_trades(self, symbols: Iterable[str]) -> dict[str, Trade]: ...

    @abc.abstractmethod
    def get_bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime | None = None
    ) -> list[Bar]: ...


class _Activity(Protocol):
    id: str


A = TypeVar("A", bound=_Activity)


def every_page(
    list_page: Callable[..., list[A]], *, page_size: int, **window: object
) -> Iterator[A]:
    """Every activity of a paged activity listing, each once: each page continues after the
    last activity's id; a short page is the last."""
    token: str | None = None
    while True:
        page = list_page(page_size=page_size, page_token=token, **window)
        yield from page
        if len(page) < page_size:
            return
        token = page[-1].id


MarketDataHandler = Callable[[Quote | Trade | Bar], Awaitable[None]]
OrderUpdateHandler = Callable[[OrderUpdate], Awaitable[None]]
# (state, detail): state is "up", "down" or "lagging".
FeedStatusHandler = Callable[[str, str], Awaitable[None]]
# (symbols, reason): the provider refused to stream these symbols (e.g. over its symbol limit).
SymbolsRefusedHandler = Callable[[set[str], str], Awaitable[None]]


class MarketDataStream(abc.ABC):
    """The one upstream market-data connection (trades, quotes, minute bars)."""

    def __init__(
        self,
        on_data: MarketDataHandler,
        on_status: FeedStatusHandler,
        on_refused: SymbolsRefusedHandler | None = None,
    ):
        self.on_data = on_data
        self.on_status = on_status
        self.on_refused = on_refused

    @abc.abstractmethod
    async def run(self) -> None:
        """Connect and deliver until stop(); reconnect with backoff, resubscribe, report status.

        Returns only after stop(); any other end is an exception (the hub retries)."""

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def set_symbols(self, symbols: set[str]) -> None:
        """Subscribe to trades, quotes and bars for exactly these symbols."""


class OrderUpdateStream(abc.ABC):
    """A broker account's order updates (Alpaca's trade_updates)."""

    def __init__(self, on_update: OrderUpdateHandler, on_status: FeedStatusHandler):
        self.on_update = on_update
        self.on_status = on_status

    @abc.abstractmethod
    async def run(self) -> None:
        """Connect and deliver until stop(); reconnect with backoff, report status."""

    @abc.abstractmethod
    async def stop(self) -> None: ...
