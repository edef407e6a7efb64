"""NYSE hours for the paper exchange: holidays, early closes, weekends, and the demo setting."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tradedesk.broker import calendar
from tradedesk.broker.sim.exchange import SimBroker


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


WEDNESDAY_OPEN = utc(2026, 11, 25, 15, 0)  # 10:00 New York
THANKSGIVING = utc(2026, 11, 26, 16, 0)  # 11:00 New York, NYSE closed
BLACK_FRIDAY = utc(2026, 11, 27, 15, 0)  # early close at 13:00 New York = 18:00 UTC
SATURDAY = utc(2026, 11, 28, 16, 0)


@pytest.fixture
def follow_the_calendar(settings):
    settings.TRADEDESK_SIM_ALWAYS_OPEN = False


def test_a_regular_session_is_9_30_to_16_00_new_york():
    assert not calendar.is_regular_session(utc(2026, 11, 25, 14, 29))
    assert calendar.is_regular_session(utc(2026, 11, 25, 14, 30))
    assert calendar.is_regular_session(utc(2026, 11, 25, 20, 59))
    assert not calendar.is_regular_session(utc(2026, 11, 25, 21, 0))
    assert calendar.session_close(WEDNESDAY_OPEN) == utc(2026, 11, 25, 21, 0)


def test_thanksgiving_is_closed_and_the_next_open_is_friday():
    assert not calendar.is_regular_session(THANKSGIVING)
    assert not calendar.is_extended_session(THANKSGIVING)
    assert calendar.next_open(THANKSGIVING) == utc(2026, 11, 27, 14, 30)


def test_the_day_after_thanksgiving_closes_early_at_13_00_new_york():
    assert calendar.is_regular_session(utc(2026, 11, 27, 17, 59))
    assert not calendar.is_regular_session(utc(2026, 11, 27, 18, 0))
    assert calendar.session_close(BLACK_FRIDAY) == utc(2026, 11, 27, 18, 0)
    assert calendar.next_close(BLACK_FRIDAY) == utc(2026, 11, 27, 18, 0)


def test_weekends_are_closed():
    assert not calendar.is_regular_session(SATURDAY)
    assert not calendar.is_regular_session(utc(2026, 11, 29, 16, 0))
    assert not calendar.is_extended_session(SATURDAY)
    assert calendar.next_open(SATURDAY) == utc(2026, 11, 30, 14, 30)


def test_extended_hours_are_4_00_to_20_00_new_york_on_trading_days():
    assert calendar.is_extended_session(utc(2026, 11, 25, 9, 0))  # 04:00 New York
    assert not calendar.is_extended_session(utc(2026, 11, 25, 8, 59))
    assert calendar.is_extended_session(utc(2026, 11, 25, 21, 0))  # 16:00 New York
    assert not calendar.is_extended_session(utc(2026, 11, 26, 1, 0))  # 20:00 New York
    assert not calendar.is_extended_session(WEDNESDAY_OPEN)  # regular, not extended


@pytest.mark.usefixtures("follow_the_calendar")
@pytest.mark.parametrize(
    ("at", "is_open"),
    [(WEDNESDAY_OPEN, True), (THANKSGIVING, False), (SATURDAY, False), (BLACK_FRIDAY, True)],
)
def test_with_always_open_off_the_exchange_follows_the_calendar(at, is_open):
    assert calendar.is_open(at) is is_open
    clock = SimBroker("any", now=lambda: at).get_clock()
    assert clock.is_open is is_open
    assert clock.timestamp == at
    assert clock.next_open > at and clock.next_close > at


@pytest.mark.parametrize("at", [THANKSGIVING, SATURDAY, utc(2026, 11, 25, 3, 0)])
def test_the_demo_setting_trades_around_the_clock(settings, at):
    settings.TRADEDESK_SIM_ALWAYS_OPEN = True
    assert calendar.is_open(at)
    assert SimBroker("any", now=lambda: at).get_clock().is_open
