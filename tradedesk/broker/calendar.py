"""NYSE trading hours from exchange_calendars (holidays and early closes included), for the
whole desk: validation and day-trade counting use it for every broker, and the paper exchange
runs on it (is_open adds the paper exchange's TRADEDESK_SIM_ALWAYS_OPEN demo setting).

The calendar's answers depend only on the minute (or the New York date), and pandas makes
each look-up cost tens of microseconds, so they are cached by minute and by date: the order
path asks the same questions many times a second.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import exchange_calendars
import pandas as pd
from django.conf import settings

from tradedesk.broker.types import Clock

# A few days of minutes: every order, price check and matching step asks about "now".
_MINUTES_CACHED = 8192


@lru_cache(maxsize=1)
def nyse():
    # Starting a few years back keeps construction fast; the library looks a year ahead.
    return exchange_calendars.get_calendar("XNYS", start="2022-01-01")


def _minute(at: datetime) -> datetime:
    """`at` in UTC, floored to the minute: the calendar's resolution and the cache key."""
    return at.astimezone(UTC).replace(second=0, microsecond=0)


def market_zone() -> ZoneInfo:
    """Market time: New York (settings.MARKET_TIME_ZONE)."""
    return ZoneInfo(settings.MARKET_TIME_ZONE)


def _new_york(at: datetime) -> datetime:
    return at.astimezone(market_zone())


def is_regular_session(at: datetime) -> bool:
    return _is_regular_session(_minute(at))


@lru_cache(maxsize=_MINUTES_CACHED)
def _is_regular_session(minute: datetime) -> bool:
    return bool(nyse().is_open_on_minute(pd.Timestamp(minute), ignore_breaks=True))


def is_open(at: datetime) -> bool:
    """Whether the paper exchange trades at `at` (always, when the demo setting says so)."""
    return settings.TRADEDESK_SIM_ALWAYS_OPEN or is_regular_session(at)


def is_extended_session(at: datetime) -> bool:
    """Pre-market 4:00-9:30 and after-hours 16:00-20:00 New York time on a trading day."""
    if is_regular_session(at):
        return False
    local = _new_york(at)
    if not _is_session(local.date()):
        return False
    minutes = local.hour * 60 + local.minute
    return 4 * 60 <= minutes < 20 * 60


@lru_cache(maxsize=1024)
def _is_session(day: date) -> bool:
    return bool(nyse().is_session(pd.Timestamp(day)))


def next_open(at: datetime) -> datetime:
    return _next_open(_minute(at))


@lru_cache(maxsize=_MINUTES_CACHED)
def _next_open(minute: datetime) -> datetime:
    return nyse().next_open(pd.Timestamp(minute)).to_pydatetime()


def next_close(at: datetime) -> datetime:
    return _next_close(_minute(at))


@lru_cache(maxsize=_MINUTES_CACHED)
def _next_close(minute: datetime) -> datetime:
    return nyse().next_close(pd.Timestamp(minute)).to_pydatetime()


def previous_close(at: datetime) -> datetime:
    """The latest regular session close at or before `at`: what "yesterday's equity" means."""
    minute = _minute(at)
    session = session_on_date_of(minute)
    if session is not None and session[1] <= minute:
        return session[1]
    return _previous_close(minute)


@lru_cache(maxsize=_MINUTES_CACHED)
def _previous_close(minute: datetime) -> datetime:
    return nyse().previous_close(pd.Timestamp(minute)).to_pydatetime()


def session_close(at: datetime) -> datetime:
    """The close of the session in progress at `at`, or of the next one."""
    return _session_close(_minute(at))


@lru_cache(maxsize=_MINUTES_CACHED)
def _session_close(minute: datetime) -> datetime:
    calendar = nyse()
    if _is_regular_session(minute):
        session = calendar.minute_to_session(pd.Timestamp(minute))
        return calendar.session_close(session).to_pydatetime()
    return _next_close(minute)


def clock(at: datetime) -> Clock:
    return Clock(
        timestamp=at,
        is_open=is_open(at),
        next_open=next_open(at),
        next_close=next_close(at),
    )


def session_on_date_of(at: datetime) -> tuple[datetime, datetime] | None:
    """Open and close of the session on `at`'s New York calendar date, if it is a trading day."""
    return _session_on(_new_york(at).date())


@lru_cache(maxsize=1024)
def _session_on(day: date) -> tuple[datetime, datetime] | None:
    if not _is_session(day):
        return None
    calendar, session = nyse(), pd.Timestamp(day)
    return (
        calendar.session_open(session).to_pydatetime(),
        calendar.session_close(session).to_pydatetime(),
    )


def new_york_minutes(at: datetime) -> int:
    """Minutes since midnight, New York time."""
    local = _new_york(at)
    return local.hour * 60 + local.minute
