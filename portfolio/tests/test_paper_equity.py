"""On the paper exchange: a round trip's realized P&L from the two orders' fills, the equity
history ending at the account's equity, day P&L against the previous close, snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.services import broker_for
from portfolio import services
from portfolio.models import AccountSnapshot, Fill
from tradedesk.broker import calendar

from .test_fills import market

pytestmark = pytest.mark.django_db


def test_buy_then_sell_shows_the_round_trips_realized_pl(api, trader):
    buy = market(trader, "buy", "5")
    sell = market(trader, "sell", "5")
    services.sync_fills(broker_account=buy.broker_account)
    entry = Fill.objects.get(order=buy).price
    exit_ = Fill.objects.get(order=sell).price
    buy.refresh_from_db()
    sell.refresh_from_db()
    assert (entry, exit_) == (buy.filled_avg_price, sell.filled_avg_price)
    (trip,) = api.get("/api/v1/portfolio/trades/").json()["results"]
    assert Decimal(trip["realized_pl"]) == ((exit_ - entry) * 5).quantize(Decimal("0.01"))
    assert (trip["direction"], trip["qty"]) == ("long", "5.000000000")
    summary = api.get("/api/v1/portfolio/performance/").json()
    assert summary["realized_pl"] == trip["realized_pl"] and summary["trades"] == 1


def test_history_ends_at_the_accounts_equity(api, trader):
    market(trader, "buy", "3")
    market(trader, "sell", "3")  # flat: equity is cash, whatever the market does
    services.snapshot_accounts(at=timezone.now() - timedelta(minutes=10))
    history = api.get("/api/v1/portfolio/history/", {"period": "1D", "timeframe": "1Min"}).json()
    account = api.get("/api/v1/account/").json()
    assert history["equity"][-1] == account["equity"]
    # The tick, the session close it recorded (if within the day), and now.
    close_in_window = calendar.previous_close(timezone.now()) > timezone.now() - timedelta(days=1)
    assert len(history["timestamp"]) == len(history["equity"]) == 2 + close_in_window
    assert history["timestamp"] == sorted(history["timestamp"])
    assert history["base_value"] == history["equity"][0]
    assert history["profit_loss"][0] == "0.00" and history["profit_loss_pct"][0] == "0.0000"
    assert history["timeframe"] == "1Min"


def test_history_with_an_open_position_at_a_frozen_moment(api, trader, monkeypatch):
    now = timezone.now().replace(microsecond=0)
    monkeypatch.setattr(timezone, "now", lambda: now)
    market(trader, "buy", "4", symbol="MSFT")
    history = api.get("/api/v1/portfolio/history/").json()
    account = broker_for(trader.broker_accounts.get()).get_account()
    assert Decimal(history["equity"][-1]) == account.equity.quantize(Decimal("0.01"))


def test_two_accounts_history_sums_each_accounts_last_equity(api, account, second_account):
    t0 = (timezone.now() - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    for broker_account, minutes, equity in (
        (account, 0, "1000"),
        (second_account, 30, "500"),
        (account, 70, "1100"),  # the second account carries its 500 forward
    ):
        AccountSnapshot.objects.create(
            broker_account=broker_account,
            at=t0 + timedelta(minutes=minutes),
            equity=Decimal(equity),
            cash=Decimal(equity),
            long_market_value=0,
            short_market_value=0,
        )
    history = api.get("/api/v1/portfolio/history/", {"period": "1D", "timeframe": "1H"}).json()
    live = Decimal("200000.00")  # both paper accounts are flat, at their starting cash
    assert [Decimal(e) for e in history["equity"]][:2] == [Decimal("1500.00"), Decimal("1600.00")]
    assert Decimal(history["equity"][-1]) == live
    assert len(set(history["timestamp"])) == len(history["timestamp"])
    only_first = api.get(
        "/api/v1/portfolio/history/",
        {"period": "1D", "timeframe": "1H", "broker_account": account.pk},
    ).json()
    assert only_first["equity"][:2] == ["1000.00", "1100.00"]
    performance = api.get("/api/v1/portfolio/performance/", {"period": "1D"}).json()
    assert performance["max_drawdown"] == "0.00"


def test_paper_last_equity_is_the_previous_close(trader):
    account = trader.broker_accounts.get()
    broker = broker_for(account)
    start = broker.get_account()
    assert start.last_equity == start.equity == Decimal("100000.00")
    market(trader, "buy", "10")
    after = broker.get_account()
    # Bought today: cash went into shares; at the last close there was only the cash.
    assert after.last_equity == Decimal("100000.00")
    assert after.equity != after.last_equity or after.cash < Decimal("100000")


def test_day_pl_on_the_dashboard_is_equity_less_the_previous_close(client, trader):
    market(trader, "buy", "10")
    client.force_login(trader)
    response = client.get("/")
    info = broker_for(trader.broker_accounts.get()).get_account()
    assert response.status_code == 200
    assert response.context["day_pl"] == response.context["account"].equity - Decimal("100000.00")
    assert info.last_equity == Decimal("100000.00")


def test_a_tick_after_the_bell_records_the_close(trader):
    account = trader.broker_accounts.get()
    close = calendar.previous_close(timezone.now())
    services.snapshot_accounts(at=close + timedelta(minutes=3))
    services.snapshot_accounts(at=close + timedelta(minutes=8))
    rows = list(AccountSnapshot.objects.filter(broker_account=account).values_list("kind", "at"))
    assert sorted(rows) == sorted(
        [
            ("close", close),
            ("tick", close + timedelta(minutes=3)),
            ("tick", close + timedelta(minutes=8)),
        ]
    )


def test_roll_up_keeps_hourly_then_daily_and_every_close(trader, settings):
    settings.SNAPSHOT_HOURLY_AFTER_DAYS = 7
    settings.SNAPSHOT_DAILY_AFTER_DAYS = 90
    account = trader.broker_accounts.get()
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    rows = []
    for days_ago in (1, 30, 200):  # recent, hourly-aged, daily-aged
        day = now - timedelta(days=days_ago)
        rows += [
            AccountSnapshot(
                broker_account=account,
                at=day + timedelta(minutes=5 * n),
                equity=Decimal(n),
                cash=0,
                long_market_value=0,
                short_market_value=0,
            )
            for n in range(36)  # three hours of 5-minute ticks
        ]
    rows.append(
        AccountSnapshot(
            broker_account=account,
            at=now - timedelta(days=200, hours=3),
            kind="close",
            equity=1,
            cash=0,
            long_market_value=0,
            short_market_value=0,
        )
    )
    AccountSnapshot.objects.bulk_create(rows)
    services.roll_up_snapshots(now=now)
    left = AccountSnapshot.objects.filter(broker_account=account)
    assert left.filter(at__gt=now - timedelta(days=7)).count() == 36
    hourly = left.filter(at__lt=now - timedelta(days=7), at__gt=now - timedelta(days=90))
    assert list(hourly.order_by("at").values_list("kind", "equity")) == [
        ("rollup", Decimal(11)),
        ("rollup", Decimal(23)),
        ("rollup", Decimal(35)),
    ]
    daily = left.filter(at__lt=now - timedelta(days=90)).order_by("at")
    assert list(daily.values_list("kind", "equity")) == [("close", 1), ("rollup", 35)]


def test_the_schedules_exist_and_their_tasks_run(trader):
    from django_celery_beat.models import PeriodicTask

    from portfolio import tasks

    scheduled = set(
        PeriodicTask.objects.filter(task__startswith="portfolio.").values_list("task", flat=True)
    )
    assert scheduled == {
        "portfolio.tasks.snapshot_accounts",
        "portfolio.tasks.sync_fills",
        "portfolio.tasks.roll_up_snapshots",
    }
    market(trader, "buy", "1")
    assert tasks.sync_fills() == 1
    assert tasks.snapshot_accounts() >= 1
    assert tasks.roll_up_snapshots() == 0
