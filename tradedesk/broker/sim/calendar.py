"""NYSE trading hours from exchange_calendars (holidays and early closes included)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

import exchange_calendars
import pandas as pd
from django.conf import settings

from tradedesk.broker.types import Clock


@lru_cache(maxsize=1)
def nyse():
    # Starting a few years back keeps construction fast; the library looks a year ahead.
    return exchange_calendars.get_calendar("XNYS", start="2022-01-01")


def _ts(at: datetime) -> pd.Timestamp:
    return pd.Timestamp(at).tz_convert(UTC).floor("min")


def is_regular_session(at: datetime) -> bool:
    return bool(nyse().is_open_on_minute(_ts(at), ignore_breaks=True))


def is_open(at: datetime) -> bool:
    """Whether the paper exchange trades at `at` (always, when the demo setting says so)."""
    return settings.TRADEDESK_SIM_ALWAYS_OPEN or is_regular_session(at)


def is_extended_session(at: datetime) -> bool:
    """Pre-market 4:00-9:30 and after-hours 16:00-20:00 New York time on a trading day."""
    if is_regular_session(at):
        return False
    local = pd.Timestamp(at).tz_convert(settings.MARKET_TIME_ZONE)
    if not nyse().is_session(local.normalize().tz_localize(None)):
        return False
    minutes = local.hour * 60 + local.minute
    return 4 * 60 <= minutes < 20 * 60


def next_open(at: datetime) -> datetime:
    return nyse().next_open(_ts(at)).to_pydatetime()


def next_close(at: datetime) -> datetime:
    return nyse().next_close(_ts(at)).to_pydatetime()


def session_close(at: datetime) -> datetime:
    """The close of the session in progress at `at`, or of the next one."""
    calendar = nyse()
    ts = _ts(at)
    if calendar.is_open_on_minute(ts, ignore_breaks=True):
        session = calendar.minute_to_session(ts)
        return calendar.session_close(session).to_pydatetime()
    return next_close(at)


def clock(at: datetime) -> Clock:
    return Clock(
        timestamp=at,
        is_open=is_open(at),
        next_open=next_open(at),
        next_close=next_close(at),
    )


def session_on_date_of(at: datetime) -> tuple[datetime, datetime] | None:
    """Open and close of the session on `at`'s New York calendar date, if it is a trading day."""
    calendar = nyse()
    day = pd.Timestamp(at).tz_convert(settings.MARKET_TIME_ZONE).normalize().tz_localize(None)
    if not calendar.is_session(day):
        return None
    return (
        calendar.session_open(day).to_pydatetime(),
        calendar.session_close(day).to_pydatetime(),
    )


def new_york_minutes(at: datetime) -> int:
    """Minutes since midnight, New York time."""
    local = pd.Timestamp(at).tz_convert(settings.MARKET_TIME_ZONE)
    return local.hour * 60 + local.minute
