"""The portfolio API (DESIGN.md "Portfolio analytics"): thin views over the selectors.

Every query parameter is validated by a serializer: junk is a 400, another user's broker
account a 404.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import broker_account_for
from tradedesk.symbols import SYMBOL_RE

from . import selectors
from .models import Fill


class PortfolioQuery(serializers.Serializer):
    broker_account = serializers.IntegerField(required=False, min_value=1, max_value=2**62)

    def book(self, request) -> selectors.Book:
        account_id = self.validated_data.get("broker_account")
        account = broker_account_for(request.user, account_id) if account_id else None
        return selectors.book(selectors.accounts_for(request.user, account))


class HistoryQuery(PortfolioQuery):
    period = serializers.ChoiceField(choices=list(selectors.PERIODS), default="1M")
    timeframe = serializers.ChoiceField(choices=list(selectors.TIMEFRAMES), required=False)

    def validate(self, data):
        period = data["period"]
        timeframe = data.setdefault("timeframe", selectors.DEFAULT_TIMEFRAMES[period])
        order = list(selectors.PERIODS)
        longest = selectors.TIMEFRAME_LIMITS[timeframe]
        if order.index(period) > order.index(longest):
            raise serializers.ValidationError(
                {"timeframe": f"{timeframe} covers at most {longest}."}
            )
        return data


class PerformanceQuery(PortfolioQuery):
    period = serializers.ChoiceField(choices=list(selectors.PERIODS), default="all")


class PnlQuery(PortfolioQuery):
    interval = serializers.ChoiceField(choices=list(selectors.INTERVALS), default="day")
    start = serializers.DateField(required=False)
    end = serializers.DateField(required=False)

    def validate(self, data):
        end = data.setdefault("end", timezone.localdate(timezone=selectors.calendar.market_zone()))
        try:  # the calendar's first and last days: a period would step past date.min/max
            start = data.setdefault("start", end - timedelta(days=30))
            periods = selectors.period_count(start, end, data["interval"])
        except OverflowError:
            raise serializers.ValidationError({"end": "Date out of range."}) from None
        if start > end:
            raise serializers.ValidationError({"start": "start is after end."})
        if periods > selectors.MAX_PERIODS[data["interval"]]:
            raise serializers.ValidationError(
                {"start": f"At most {selectors.MAX_PERIODS[data['interval']]} periods."}
            )
        return data


class PageQuery(PortfolioQuery):
    page = serializers.IntegerField(required=False, default=1, min_value=1, max_value=10**6)
    page_size = serializers.IntegerField(required=False, default=50, min_value=1, max_value=500)


def documented(query: type[serializers.Serializer], description: str):
    """The schema of a portfolio read: its query parameters, a JSON object or a 400/404."""
    responses = {code: OpenApiTypes.OBJECT for code in (200, 400, 404)}
    return extend_schema(parameters=[query], responses=responses, description=description)


def _query(serializer_class, request):
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query


class PortfolioRead(APIView):
    """A read of the caller's book: its query validated, then `answer` over the book."""

    query_class: type[PortfolioQuery] = PortfolioQuery

    def get(self, request):
        query = _query(self.query_class, request)
        return self.answer(request, query.book(request), query.validated_data)

    def answer(self, request, current: selectors.Book, data: dict) -> Response:
        raise NotImplementedError


@documented(
    HistoryQuery,
    "{timestamp, equity, profit_loss, profit_loss_pct, base_value, timeframe}:"
    " Alpaca's portfolio-history shape.",
)
class HistoryView(PortfolioRead):
    query_class = HistoryQuery

    def answer(self, request, current, data):
        return Response(
            selectors.history(current, period=data["period"], timeframe=data["timeframe"])
        )


@documented(
    PerformanceQuery,
    "Realized and unrealized P&L, trade statistics, drawdown, Sharpe and Sortino,"
    " exposure, by_symbol.",
)
class PerformanceView(PortfolioRead):
    query_class = PerformanceQuery

    def answer(self, request, current, data):
        return Response(selectors.performance(current, period=data["period"]))


@documented(
    PnlQuery,
    "[{period, realized_pl, unrealized_change, trades}] per day, week or month (New York dates).",
)
class PnlView(PortfolioRead):
    query_class = PnlQuery

    def answer(self, request, current, data):
        return Response(
            selectors.pnl_calendar(
                current, interval=data["interval"], start=data["start"], end=data["end"]
            )
        )


def _page(request, rows: list[dict], data: dict) -> Response:
    size, number = data["page_size"], data["page"]
    chunk = rows[(number - 1) * size : number * size]

    def link(page: int | None) -> str | None:
        if page is None:
            return None
        params = request.query_params.copy()
        params["page"] = str(page)
        return request.build_absolute_uri(f"{request.path}?{params.urlencode()}")

    return Response(
        {
            "count": len(rows),
            "next": link(number + 1 if number * size < len(rows) else None),
            "previous": link(number - 1 if number > 1 else None),
            "results": chunk,
        }
    )


@documented(PageQuery, "Closed round trips, newest first: {count, next, previous, results}.")
class TradesView(PortfolioRead):
    query_class = PageQuery

    def answer(self, request, current, data):
        rows = [selectors.trade_row(trip) for trip in reversed(current.ledger.round_trips)]
        return _page(request, rows, data)


@documented(
    PageQuery,
    "Open tax lots with unrealized P&L, term and wash-sale risk: {count, next, previous, results}.",
)
class LotsView(PortfolioRead):
    query_class = PageQuery

    def answer(self, request, current, data):
        return _page(request, selectors.lot_rows(current, request.user), data)


class FillSerializer(serializers.ModelSerializer):
    class Meta:
        model = Fill
        fields = [
            "id",
            "broker_account",
            "order",
            "broker_order_id",
            "execution_id",
            "symbol",
            "side",
            "qty",
            "price",
            "fee",
            "at",
            "source",
        ]


class FillQuery(PortfolioQuery):
    symbol = serializers.RegexField(rf"(?i)^{SYMBOL_RE.pattern}$", required=False)
    after = serializers.DateTimeField(required=False)
    before = serializers.DateTimeField(required=False)


class FillPagination(CursorPagination):
    ordering = ("-at", "-id")
    page_size = 100
    max_page_size = 1000
    page_size_query_param = "page_size"


@extend_schema(parameters=[FillQuery])
class FillListView(generics.ListAPIView):
    """The caller's own executions, newest first (?symbol=&after=&before=&broker_account=)."""

    serializer_class = FillSerializer
    pagination_class = FillPagination
    queryset = Fill.objects.none()  # the schema's model; requests use their own

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Fill.objects.none()
        data = _query(FillQuery, self.request).validated_data
        fills = Fill.objects.filter(broker_account__user=self.request.user)
        if "broker_account" in data:
            fills = fills.filter(
                broker_account=broker_account_for(self.request.user, data["broker_account"])
            )
        if "symbol" in data:
            fills = fills.filter(symbol=data["symbol"].upper())
        if "after" in data:
            fills = fills.filter(at__gte=data["after"])
        if "before" in data:
            fills = fills.filter(at__lt=data["before"])
        return fills
