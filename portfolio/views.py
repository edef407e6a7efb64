"""The /portfolio/ page and its CSV exports (thin: the selectors compute).

Query parameters go through the API's own query serializers: junk is a 400 page, another
user's account a 404.
"""

from __future__ import annotations

import csv
import functools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.selectors import active_broker_accounts
from tradedesk.csv_safe import safe_row

from . import selectors
from .api import HistoryQuery, PortfolioQuery

CALENDAR_WEEKS = 5
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def validated(serializer_class):
    """A view taking its query, validated by the API's serializer: junk is a 400 page."""

    def decorate(view):
        @functools.wraps(view)
        def wrapper(request):
            query = serializer_class(data=request.GET)
            if not query.is_valid():
                return HttpResponseBadRequest(
                    f"Bad request: {query.errors}", content_type="text/plain"
                )
            return view(request, query)

        return wrapper

    return decorate


def drawdown_points(series: list[tuple[int, Decimal]]) -> list[dict]:
    """The equity chart's points with the drawdown below the running peak (a negative ratio)."""
    _, _, path = selectors.drawdown([equity for _, equity in series])
    return [
        {
            "time": stamp,
            "at": datetime.fromtimestamp(stamp, UTC),
            "equity": selectors.money(equity),
            "drawdown": selectors.ratio(-pct),
        }
        for (stamp, equity), pct in zip(series, path, strict=True)
    ]


@login_required
@require_GET
@validated(HistoryQuery)
def portfolio_page(request, query):
    data = query.validated_data
    current = query.book(request)
    series = selectors.sampled_equity(
        selectors.equity_points(current, selectors.period_start(data["period"], current.now)),
        selectors.TIMEFRAMES[data["timeframe"]],
    )
    today = selectors.market_date(current.now)
    # Whole weeks, Monday first, the current one last.
    start = today - timedelta(days=today.weekday() + 7 * (CALENDAR_WEEKS - 1))
    days = selectors.pnl_calendar(current, interval="day", start=start, end=today)
    lots = selectors.lot_rows(current, request.user)
    return render(
        request,
        "portfolio/portfolio.html",
        {
            "accounts": list(active_broker_accounts(request.user)),
            "selected": data.get("broker_account"),
            "period": data["period"],
            "timeframe": data["timeframe"],
            "periods": list(selectors.PERIODS),
            "summary": selectors.performance(current, period=data["period"]),
            "equity_points": drawdown_points(series),
            "calendar": days,
            "weekdays": WEEKDAYS,
            "calendar_weeks": [days[week : week + 7] for week in range(0, len(days), 7)],
            "lots": lots,
            "harvest": [lot for lot in lots if lot["harvest_candidate"]],
            "trades": [selectors.trade_row(t) for t in reversed(current.ledger.round_trips)][:200],
            "lot_method": settings.LOT_METHOD,
        },
    )


def _csv(filename: str, header: list[str], rows) -> HttpResponse:
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(header)
    for row in rows:
        writer.writerow(safe_row(row))
    return response


@login_required
@require_GET
@validated(PortfolioQuery)
def trades_csv(request, query):
    current = query.book(request)
    header = [
        "broker_account",
        "symbol",
        "direction",
        "qty",
        "entry_price",
        "exit_price",
        "opened_at",
        "closed_at",
        "fees",
        "realized_pl",
        "realized_pl_pct",
        "holding_days",
    ]
    rows = (
        [
            trip.account_id,
            trip.symbol,
            trip.direction,
            trip.qty,
            trip.entry_price.quantize(Decimal("0.000001")),
            trip.exit_price.quantize(Decimal("0.000001")),
            trip.opened_at.isoformat(),
            trip.closed_at.isoformat(),
            trip.fees.quantize(selectors.CENT),
            trip.realized_pl.quantize(selectors.CENT),
            trip.realized_pl_pct.quantize(selectors.RATIO),
            trip.holding_days.quantize(selectors.CENT),
        ]
        for trip in reversed(current.ledger.round_trips)
    )
    return _csv("trades.csv", header, rows)


@login_required
@require_GET
@validated(PortfolioQuery)
def lots_csv(request, query):
    header = [
        "broker_account",
        "symbol",
        "side",
        "qty",
        "entry_price",
        "cost_basis",
        "price",
        "acquired_at",
        "unrealized_pl",
        "term",
        "wash_sale_risk",
    ]
    rows = (
        [
            lot["broker_account"],
            lot["symbol"],
            lot["side"],
            Decimal(lot["qty"]),
            Decimal(lot["entry_price"]),
            Decimal(lot["cost_basis"]),
            Decimal(lot["price"]),
            lot["acquired_at"].isoformat(),
            Decimal(lot["unrealized_pl"]),
            lot["term"],
            lot["wash_sale_risk"],
        ]
        for lot in selectors.lot_rows(query.book(request), request.user)
    )
    return _csv("lots.csv", header, rows)
