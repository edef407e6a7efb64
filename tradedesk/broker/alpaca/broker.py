"""AlpacaBroker: the Broker interface over alpaca-py's TradingClient and data client."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar
from uuid import UUID

from alpaca.common.enums import Sort
from alpaca.data.enums import DataFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest, StockLatestQuoteRequest, StockLatestTradeRequest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import AssetClass, AssetStatus, QueryOrderStatus
from alpaca.trading.requests import (
    GetAssetsRequest,
    GetCalendarRequest,
    GetOrderByIdRequest,
    GetOrdersRequest,
)
from django.conf import settings

from ..base import Broker
from ..errors import OrderNotFound
from ..types import (
    FEE_ACTIVITY_TYPES,
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
    Position,
    Quote,
    ReplaceRequest,
    Trade,
)
from . import convert
from .transport import SDK_ERRORS, Pacer, harden, translate_error

if TYPE_CHECKING:
    from .. import BrokerCredentials

T = TypeVar("T")

# Alpaca's most orders per GET /v2/orders, and activities per GET /v2/account/activities.
MAX_ORDERS_PAGE = 500
MAX_ACTIVITIES_PAGE = 100
ORDER_QUERY_STATUSES = {"open", "closed", "all"}


def rest_host(url: str) -> str | None:
    """A URL setting as alpaca-py's REST url_override wants it: scheme and host only.

    alpaca-py appends "/v2/..." itself, so a configured ".../v2" would double it; "" means
    alpaca-py's own default (None, since the data client would take "" literally).
    """
    url = url.rstrip("/")
    url = url.removesuffix("/v2")
    return url or None


# Alpaca's key ids are 20 upper-case letters and digits (PK…, AK…), its secrets 40 letters and
# digits; the ranges leave room for format changes. Both go out as HTTP header values, and
# anything else (a control character, non-Latin-1) broke the request.
KEY_ID_RE = re.compile(r"[A-Z0-9]{16,40}")
SECRET_RE = re.compile(r"[A-Za-z0-9]{32,88}")


class AlpacaBroker(Broker):
    provider = "alpaca"

    @classmethod
    def key_problem(cls, *, key_id: str | None, secret: str | None) -> KeyProblem | None:
        if key_id is not None and not KEY_ID_RE.fullmatch(key_id):
            return KeyProblem(
                "invalid_key_id",
                "key_id",
                "An Alpaca key id is 16 to 40 upper-case letters and digits (e.g. PK… or AK…).",
            )
        if secret is not None and not SECRET_RE.fullmatch(secret):
            return KeyProblem(
                "invalid_secret", "secret", "An Alpaca secret is 32 to 88 letters and digits."
            )
        return None

    def __init__(self, credentials: BrokerCredentials):
        self._requests_per_minute = settings.ALPACA_REQUESTS_PER_MINUTE
        pacer = Pacer(credentials.key_id, self._requests_per_minute)
        timeout = settings.ALPACA_TIMEOUT_SECONDS
        self._trading, self._orders = (
            TradingClient(
                api_key=credentials.key_id,
                secret_key=credentials.secret,
                paper=credentials.paper,
                url_override=rest_host(settings.ALPACA_TRADING_URL),
                # Orders come back as Alpaca's JSON, parsed by convert's lenient models: a
                # status or class alpaca-py's enums don't know yet must not fail the response.
                raw_data=raw,
            )
            for raw in (False, True)
        )
        self._data = StockHistoricalDataClient(
            api_key=credentials.key_id,
            secret_key=credentials.secret,
            url_override=rest_host(settings.ALPACA_DATA_URL),
        )
        for client in (self._trading, self._orders, self._data):
            harden(client, pacer, timeout)
        self._feed = DataFeed(settings.ALPACA_DATA_FEED)

    def _call(
        self,
        fn: Callable[..., T],
        *args: object,
        modifying_order: bool = False,
        missing_is_rejection: bool = False,
    ) -> T:
        try:
            return fn(*args)
        except SDK_ERRORS as exc:
            raise translate_error(
                exc,
                requests_per_minute=self._requests_per_minute,
                modifying_order=modifying_order,
                missing_is_rejection=missing_is_rejection,
            ) from exc

    # --- account -------------------------------------------------------
    def get_account(self) -> Account:
        return convert.account_from_alpaca(self._call(self._trading.get_account))

    def get_clock(self) -> Clock:
        return convert.clock_from_alpaca(self._call(self._trading.get_clock))

    def get_calendar(self, start: date, end: date) -> list[convert.MarketDay]:
        days = self._call(self._trading.get_calendar, GetCalendarRequest(start=start, end=end))
        return [convert.market_day_from_alpaca(day) for day in days]

    def get_asset(self, symbol: str) -> Asset:
        asset = self._call(self._trading.get_asset, symbol, missing_is_rejection=True)
        return convert.asset_from_alpaca(asset)

    def list_assets(self) -> list[Asset]:
        request = GetAssetsRequest(status=AssetStatus.ACTIVE, asset_class=AssetClass.US_EQUITY)
        return [
            convert.asset_from_alpaca(a) for a in self._call(self._trading.get_all_assets, request)
        ]

    def list_positions(self) -> list[Position]:
        return [
            convert.position_from_alpaca(p) for p in self._call(self._trading.get_all_positions)
        ]

    def list_fill_activities(
        self,
        *,
        after: datetime | None = None,
        until: datetime | None = None,
        direction: str = "desc",
        page_size: int = MAX_ACTIVITIES_PAGE,
        page_token: str | None = None,
    ) -> list[FillActivity]:
        rows = self._activities(
            "/account/activities/FILL",
            after=after,
            until=until,
            direction=direction,
            page_size=page_size,
            page_token=page_token,
        )
        return [convert.fill_activity_from_alpaca(row) for row in rows]

    def list_fee_activities(
        self,
        *,
        after: datetime | None = None,
        until: datetime | None = None,
        direction: str = "desc",
        page_size: int = MAX_ACTIVITIES_PAGE,
        page_token: str | None = None,
    ) -> list[FeeActivity]:
        rows = self._activities(
            "/account/activities",
            activity_types=",".join(FEE_ACTIVITY_TYPES),
            after=after,
            until=until,
            direction=direction,
            page_size=page_size,
            page_token=page_token,
        )
        return [convert.fee_activity_from_alpaca(row) for row in rows]

    def _activities(
        self,
        path: str,
        *,
        after: datetime | None,
        until: datetime | None,
        direction: str,
        page_size: int,
        page_token: str | None,
        activity_types: str | None = None,
    ) -> list[dict]:
        """One page of GET /v2/account/activities (of one type by path, or of several by
        `activity_types`), as Alpaca's JSON."""
        if direction not in ("asc", "desc"):
            raise convert.invalid_request("direction must be asc or desc")
        query = {
            "activity_types": activity_types,
            "direction": direction,
            "page_size": max(1, min(page_size, MAX_ACTIVITIES_PAGE)),
            "after": after.isoformat() if after else None,
            "until": until.isoformat() if until else None,
            "page_token": page_token,
        }
        # Through the client's own session: the adapter's timeout, pacing and error mapping.
        sent = {k: v for k, v in query.items() if v is not None}
        return self._call(self._trading.get, path, sent) or []

    # --- orders --------------------------------------------------------
    def _order_call(self, fn: Callable[..., dict], *args: object, **options: bool) -> BrokerOrder:
        """One order-returning call of the raw-data client, parsed leniently."""
        return convert.order_from_alpaca(
            self._call(lambda *a: convert.parse_order(fn(*a)), *args, **options)
        )

    def submit_order(self, request: OrderRequest) -> BrokerOrder:
        return self._order_call(self._orders.submit_order, convert.order_request_to_alpaca(request))

    def get_order(self, order_id: str) -> BrokerOrder:
        return self._order_call(
            self._orders.get_order_by_id, _order_uuid(order_id), GetOrderByIdRequest(nested=True)
        )

    def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder:
        return self._order_call(self._orders.get_order_by_client_id, client_order_id)

    def list_orders(
        self,
        *,
        status: str = "all",
        after: datetime | None = None,
        until: datetime | None = None,
        limit: int = MAX_ORDERS_PAGE,
        direction: str = "asc",
        symbols: Iterable[str] | None = None,
    ) -> list[BrokerOrder]:
        if status not in ORDER_QUERY_STATUSES:
            raise convert.invalid_request(f"status must be one of {sorted(ORDER_QUERY_STATUSES)}")
        query = GetOrdersRequest(
            status=QueryOrderStatus(status),
            after=after,
            until=until,
            limit=min(limit, MAX_ORDERS_PAGE),
            direction=Sort(direction),
            nested=True,
            symbols=list(symbols) if symbols else None,
        )
        orders = self._call(lambda q: convert.parse_orders(self._orders.get_orders(q)), query)
        return [convert.order_from_alpaca(o) for o in orders]

    def iter_all_orders(
        self,
        *,
        status: str = "all",
        after: datetime | None = None,
        symbols: Iterable[str] | None = None,
        page_size: int = MAX_ORDERS_PAGE,
    ) -> Iterator[BrokerOrder]:
        """Every order submitted after `after`, oldest first, each once, paging past 500.

        Alpaca compares `after` with nanosecond submission times but alpaca-py hands back
        microseconds, truncated: asking for "after the last order's time" returns that order
        again (forever, for a naive pager), and a strict cut would skip orders that share
        the boundary microsecond. So each page asks from one microsecond before the last
        order, drops the ids it has already yielded from that overlap, and stops when a
        page brings nothing new. (More than `page_size` orders inside one microsecond would
        end it early; Alpaca can't accept orders that fast.)
        """
        if page_size < 2:
            raise ValueError("page_size must leave room past the overlap (>= 2)")
        symbols = list(symbols) if symbols else None
        cursor, overlap = after, set[str]()
        while True:
            page = self.list_orders(
                status=status, after=cursor, limit=page_size, direction="asc", symbols=symbols
            )
            fresh = [order for order in page if order.id not in overlap]
            yield from fresh
            if not fresh or len(page) < page_size:
                return
            cursor = _submitted(page[-1]) - timedelta(microseconds=1)
            overlap = {order.id for order in page if _submitted(order) >= cursor}

    def cancel_order(self, order_id: str) -> None:
        self._call(self._orders.cancel_order_by_id, _order_uuid(order_id), modifying_order=True)

    def replace_order(self, order_id: str, request: ReplaceRequest) -> BrokerOrder:
        return self._order_call(
            self._orders.replace_order_by_id,
            _order_uuid(order_id),
            convert.replace_request_to_alpaca(request),
            modifying_order=True,
        )

    def cancel_all_orders(self) -> list[CancelResult]:
        results = self._call(self._trading.cancel_orders, modifying_order=True)
        return [convert.cancel_result_from_alpaca(r) for r in results]

    def close_position(self, symbol: str) -> BrokerOrder:
        order = self._call(self._trading.close_position, symbol, missing_is_rejection=True)
        return convert.order_from_alpaca(order)

    def close_all_positions(self, *, cancel_orders: bool = False) -> list[ClosePositionResult]:
        results = self._call(self._trading.close_all_positions, cancel_orders or None)
        return [convert.close_result_from_alpaca(r) for r in results]

    # --- market data ---------------------------------------------------
    def get_latest_quotes(self, symbols: Iterable[str]) -> dict[str, Quote]:
        symbols = sorted(set(symbols))
        if not symbols:
            return {}
        request = StockLatestQuoteRequest(symbol_or_symbols=symbols, feed=self._feed)
        quotes = self._call(self._data.get_stock_latest_quote, request)
        return {symbol: convert.quote_from_alpaca(q) for symbol, q in quotes.items()}

    def get_latest_trades(self, symbols: Iterable[str]) -> dict[str, Trade]:
        symbols = sorted(set(symbols))
        if not symbols:
            return {}
        request = StockLatestTradeRequest(symbol_or_symbols=symbols, feed=self._feed)
        trades = self._call(self._data.get_stock_latest_trade, request)
        return {symbol: convert.trade_from_alpaca(t) for symbol, t in trades.items()}

    def get_bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime | None = None
    ) -> list[Bar]:
        if timeframe not in convert.TIMEFRAMES:
            raise convert.invalid_request(f"timeframe must be one of {list(convert.TIMEFRAMES)}")
        request = StockBarsRequest(
            symbol_or_symbols=symbol,
            timeframe=convert.TIMEFRAMES[timeframe],
            start=start,
            end=end,
            feed=self._feed,
        )
        # alpaca-py follows next_page_token itself; every page goes through our transport.
        bar_set = self._call(self._data.get_stock_bars, request)
        return [convert.bar_from_alpaca(b) for b in bar_set.data.get(symbol, [])]


def _order_uuid(order_id: str) -> UUID:
    # alpaca-py refuses a non-UUID id with ValueError before any request; Alpaca would 404.
    try:
        return UUID(str(order_id))
    except ValueError:
        raise OrderNotFound(f"order not found for {order_id}") from None


def _submitted(order: BrokerOrder) -> datetime:
    return order.submitted_at or order.created_at
