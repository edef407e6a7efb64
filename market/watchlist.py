"""A trader's watchlist: the symbols the watchlist page streams quotes for."""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max

from accounts.models import User
from tradedesk.symbols import SYMBOL_RE, parse_symbols

from . import services
from .models import WatchlistItem


class WatchlistError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def watchlist_symbols(user: User) -> list[str]:
    return list(WatchlistItem.objects.filter(user=user).values_list("symbol", flat=True))


def add_to_watchlist(*, user: User, symbol: str) -> WatchlistItem:
    """Append a known symbol; the page streams them all on one connection, hence the limit."""
    try:
        symbol = parse_symbols(symbol, limit=1)[0]
    except ValueError as error:
        raise WatchlistError(str(error)) from None
    if WatchlistItem.objects.filter(user=user, symbol=symbol).exists():
        raise WatchlistError(f"{symbol} is already on your watchlist.")
    limit = settings.STREAM_MAX_SYMBOLS
    if WatchlistItem.objects.filter(user=user).count() >= limit:
        raise WatchlistError(f"A watchlist holds at most {limit} symbols.")
    if symbol not in services.latest_quotes([symbol]):
        raise WatchlistError(f"{symbol} is not a symbol the market data knows.")
    try:
        with transaction.atomic():
            last = WatchlistItem.objects.filter(user=user).aggregate(last=Max("position"))["last"]
            return WatchlistItem.objects.create(
                user=user, symbol=symbol, position=0 if last is None else last + 1
            )
    except IntegrityError:
        raise WatchlistError(f"{symbol} is already on your watchlist.") from None


def remove_from_watchlist(*, user: User, symbol: str) -> bool:
    """Remove a symbol; anything that isn't a ticker can't be on the list (nothing to remove)."""
    symbol = symbol.strip().upper()
    if not SYMBOL_RE.fullmatch(symbol):
        return False
    deleted, _ = WatchlistItem.objects.filter(user=user, symbol=symbol).delete()
    return bool(deleted)
