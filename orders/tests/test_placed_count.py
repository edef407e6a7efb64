"""MAX_DAILY_TRADES' count stays exact while a read counts only the orders after the user's
kept count (selectors.PlacedCount), so it costs the same after 1,000 orders that day."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import timezone

from orders import day_trades, selectors, services
from orders.errors import OrderInvalid
from orders.models import Order
from orders.tests.day_support import fill_day
from orders.validation import OrderInput
from tradedesk.broker import calendar
from tradedesk.broker.errors import RateLimited
from tradedesk.broker.sim.exchange import SimBroker

pytestmark = pytest.mark.django_db


def _since():
    return day_trades.day_start(timezone.now().astimezone(calendar.market_zone()).date())


def _placed(user) -> int:
    return selectors.exposure_and_placed_today(user.broker_accounts.get(), "AAPL", user, _since())[
        1
    ]


def _true_count(user) -> int:
    return (
        Order.objects.filter(user=user, created_at__gte=_since(), parent__isnull=True)
        .exclude(placed_via="sync")
        .count()
    )


def _kept(user) -> selectors.PlacedCount | None:
    return cache.get(selectors.placed_count_key(user.pk))


def _place(user):
    return services.place_order(
        user=user,
        broker_account=user.broker_accounts.get(),
        order_input=OrderInput(
            symbol="KO", side="buy", type="market", time_in_force="day", qty=Decimal("1")
        ),
    )


@pytest.fixture
def desk_limits(settings):
    settings.MAX_DAILY_TRADES = 100_000
    settings.ORDER_COMMAND_RATES = {**settings.ORDER_COMMAND_RATES, "place": "100000/min"}


@pytest.mark.usefixtures("desk_limits")
def test_the_count_is_exact_across_kept_counts_and_counts_only_what_came_after(trader):
    fill_day(trader, 1000)
    assert _placed(trader) == _true_count(trader) == 1000
    kept = _kept(trader)
    assert (kept.count, kept.last_id) == (1000, Order.objects.latest("id").pk)

    for placed in range(1, 2 * selectors.PLACED_COUNT_EVERY + 3):
        _place(trader)
        assert _placed(trader) == _true_count(trader) == 1000 + placed
    assert _kept(trader).count > 1000  # kept again as the orders after it grew

    # The read starts from the kept count: it does not count the orders the kept one holds.
    cache.set(
        selectors.placed_count_key(trader.pk),
        dataclasses.replace(_kept(trader), count=_kept(trader).count + 7),
    )
    assert _placed(trader) == _true_count(trader) + 7


@pytest.mark.usefixtures("desk_limits")
def test_orders_of_the_stream_and_legs_and_other_days_do_not_count(trader):
    _place(trader)
    assert _placed(trader) == 1
    earlier = Order.objects.get()
    other_day = timezone.now() - timedelta(days=3)
    for via, parent in (("sync", None), ("api", earlier)):
        Order.objects.create(
            user=trader,
            broker_account=earlier.broker_account,
            client_order_id=f"{via}-{parent is not None}",
            symbol="KO",
            side="buy",
            type="market",
            status="filled",
            qty=Decimal("1"),
            placed_via=via,
            parent=parent,
        )
    assert _placed(trader) == 1
    # A kept count of another day is not used.
    cache.set(
        selectors.placed_count_key(trader.pk),
        dataclasses.replace(_kept(trader), since=other_day, count=50),
    )
    assert _placed(trader) == 1


@pytest.mark.usefixtures("desk_limits")
def test_an_order_taken_back_after_the_broker_refused_it_is_no_longer_counted(trader, monkeypatch):
    for _ in range(3):
        _place(trader)
    assert _placed(trader) == 3 and _kept(trader) is not None

    def refuse(self, request):
        # Meanwhile another request kept a count that holds the order recorded pending.
        cache.delete(selectors.placed_count_key(trader.pk))
        assert _placed(trader) == 4 and _kept(trader).count == 4
        raise RateLimited("slow down")

    monkeypatch.setattr(SimBroker, "submit_order", refuse)
    with pytest.raises(RateLimited):
        _place(trader)
    assert _kept(trader) is None  # the kept count held it
    assert _placed(trader) == _true_count(trader) == 3


def test_the_daily_limit_holds_past_a_kept_count(trader, settings):
    settings.ORDER_COMMAND_RATES = {**settings.ORDER_COMMAND_RATES, "place": "100000/min"}
    settings.MAX_DAILY_TRADES = selectors.PLACED_COUNT_EVERY + 5
    fill_day(trader, selectors.PLACED_COUNT_EVERY)
    for _ in range(5):
        _place(trader)
    with pytest.raises(OrderInvalid) as refused:
        _place(trader)
    assert [issue.code for issue in refused.value.verdict.errors] == ["max_daily_trades"]
    assert _true_count(trader) == settings.MAX_DAILY_TRADES
