"""The watchlist page (thin: market.watchlist does the work)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from tradedesk.broker.errors import BrokerError

from . import services, watchlist


@login_required
@require_GET
def watchlist_page(request):
    symbols = watchlist.watchlist_symbols(request.user)
    context = {"symbols": symbols, "quotes": {}, "trades": {}}
    if symbols:
        # First paint from the latest quotes; the stream (or polling) keeps them fresh.
        try:
            context["quotes"] = services.latest_quotes(symbols)
            context["trades"] = services.latest_trades(symbols)
        except BrokerError as error:
            context["market_error"] = error.message
    context["rows"] = [
        (symbol, context["quotes"].get(symbol), context["trades"].get(symbol)) for symbol in symbols
    ]
    return render(request, "market/watchlist.html", context)


@login_required
@require_POST
def watchlist_add(request):
    try:
        item = watchlist.add_to_watchlist(user=request.user, symbol=request.POST.get("symbol", ""))
    except watchlist.WatchlistError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Added {item.symbol} to your watchlist.")
    return redirect("watchlist")


@login_required
@require_POST
def watchlist_remove(request, symbol: str):
    if watchlist.remove_from_watchlist(user=request.user, symbol=symbol):
        messages.success(request, f"Removed {symbol.upper()} from your watchlist.")
    return redirect("watchlist")
