"""The sync's schedules, tasks, API, admin action and position snapshots."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.conf import settings
from django_celery_beat.models import PeriodicTask

from orders import tasks
from orders.models import Order, PositionSnapshot, SyncRun
from orders.sync import paging, snapshots
from orders.sync.selectors import last_sync_for
from tradedesk.broker.errors import BrokerUnavailable
from tradedesk.broker.types import Position

from .fake_broker import FakeBroker, broker_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def brokers(monkeypatch):
    """Every broker account talks to its own fake broker."""
    by_account: dict[int, FakeBroker] = {}

    def broker_for(account):
        return by_account.setdefault(account.pk, FakeBroker())

    monkeypatch.setattr(paging, "broker_for", broker_for)
    monkeypatch.setattr(snapshots, "broker_for", broker_for)
    return by_account


def test_the_beat_schedules_exist_after_migrate():
    schedules = {
        task.task: (task.interval.every, task.interval.period, task.enabled)
        for task in PeriodicTask.objects.select_related("interval")
    }
    assert schedules["orders.tasks.sync_all_accounts"] == (
        settings.ORDER_SYNC_INTERVAL,
        "seconds",
        True,
    )
    assert schedules["orders.tasks.snapshot_positions"] == (
        settings.POSITION_SNAPSHOT_INTERVAL,
        "seconds",
        True,
    )
    assert schedules["orders.tasks.match_paper_orders"][1:] == ("seconds", True)


def test_the_scheduled_task_names_are_registered_tasks():
    from tradedesk.celery import app

    app.loader.import_default_modules()  # what a worker does at start: every app's tasks
    for task in PeriodicTask.objects.exclude(task="celery.backend_cleanup"):
        assert task.task in app.tasks, task.task


def test_sync_all_accounts_fans_out_one_run_per_active_account(
    eager, brokers, trader, other_trader
):
    alice, mallory = trader.broker_accounts.get(), other_trader.broker_accounts.get()
    brokers[alice.pk] = FakeBroker([(1000, broker_order(1)), (2000, broker_order(2))])
    brokers[mallory.pk] = FakeBroker([(1000, broker_order(3))])

    assert tasks.sync_all_accounts() == 2

    runs = {run.broker_account_id: run for run in SyncRun.objects.all()}
    assert {k: (r.status, r.trigger, r.created) for k, r in runs.items()} == {
        alice.pk: ("done", "schedule", 2),
        mallory.pk: ("done", "schedule", 1),
    }
    assert Order.objects.filter(user=trader, placed_via="sync").count() == 2
    assert last_sync_for(trader) == runs[alice.pk]


def test_a_broker_outage_fails_the_run_and_the_task_retries(brokers, trader):
    account = trader.broker_accounts.get()
    broker = brokers[account.pk] = FakeBroker([(1000, broker_order(1))])
    outages = iter([BrokerUnavailable("timeout")])

    def flaky(page):
        failure = next(outages, None)
        if failure:
            raise failure

    broker.before_page = flaky
    # Run eagerly: Celery re-runs a retried eager task at once (no countdown).
    tasks.sync_account.apply(args=[account.pk])

    run = SyncRun.objects.get()  # the retry continued the same run
    assert (run.status, run.created, run.error) == ("done", 1, "")


def test_snapshot_positions_writes_one_row_per_position(brokers, trader, other_trader):
    alice, mallory = trader.broker_accounts.get(), other_trader.broker_accounts.get()
    aapl = Position(
        symbol="AAPL",
        asset_id="a",
        qty=Decimal("10"),
        side="long",
        avg_entry_price=Decimal("180.25"),
        current_price=Decimal("190.5"),
        market_value=Decimal("1905.00"),
        cost_basis=Decimal("1802.50"),
        unrealized_pl=Decimal("102.50"),
        unrealized_plpc=Decimal("0.0569"),
    )
    tsla = Position(
        symbol="TSLA",
        asset_id="t",
        qty=Decimal("-2"),
        side="short",
        avg_entry_price=Decimal("250"),
        current_price=Decimal("240"),
        market_value=Decimal("-480"),
        cost_basis=Decimal("-500"),
        unrealized_pl=Decimal("20"),
        unrealized_plpc=Decimal("0.04"),
    )
    brokers[alice.pk] = FakeBroker(positions=[aapl, tsla])
    brokers[mallory.pk] = FakeBroker()
    at = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)

    assert snapshots.snapshot_positions(at=at) == 2

    stored = {s.symbol: s for s in PositionSnapshot.objects.all()}
    assert set(stored) == {"AAPL", "TSLA"}
    apple = stored["AAPL"]
    assert (apple.user, apple.broker_account, apple.snapshot_at) == (trader, alice, at)
    assert (
        apple.qty,
        apple.side,
        apple.avg_entry_price,
        apple.current_price,
        apple.market_value,
        apple.cost_basis,
        apple.unrealized_pl,
        apple.unrealized_plpc,
    ) == (
        Decimal("10"),
        "long",
        Decimal("180.25"),
        Decimal("190.5"),
        Decimal("1905"),
        Decimal("1802.5"),
        Decimal("102.5"),
        Decimal("0.0569"),
    )
    assert (stored["TSLA"].qty, stored["TSLA"].side) == (Decimal("-2"), "short")


def test_a_failing_broker_leaves_only_its_account_out_of_the_snapshot(
    brokers, trader, other_trader, monkeypatch
):
    alice = trader.broker_accounts.get()
    other_trader.broker_accounts.get()

    def broker_for(account):
        if account.pk == alice.pk:
            broker = FakeBroker()
            broker.list_positions = lambda: (_ for _ in ()).throw(BrokerUnavailable("down"))
            return broker
        return FakeBroker(positions=[_position("MSFT")])

    monkeypatch.setattr(snapshots, "broker_for", broker_for)

    assert snapshots.snapshot_positions() == 1
    assert list(PositionSnapshot.objects.values_list("user", "symbol")) == [
        (other_trader.pk, "MSFT")
    ]


def _position(symbol: str) -> Position:
    return Position(
        symbol=symbol,
        asset_id=symbol,
        qty=Decimal("1"),
        side="long",
        avg_entry_price=Decimal("1"),
        current_price=Decimal("1"),
        market_value=Decimal("1"),
        cost_basis=Decimal("1"),
        unrealized_pl=Decimal("0"),
        unrealized_plpc=Decimal("0"),
    )


def test_snapshot_task_runs(brokers, trader):
    brokers[trader.broker_accounts.get().pk] = FakeBroker(positions=[_position("AAPL")])
    assert tasks.snapshot_positions() == 1


def test_match_paper_orders_fills_a_resting_order_nobody_is_looking_at(monkeypatch):
    """A buy limit placed under the market rests; once the price comes down to it, the
    periodic task fills it without anyone touching the account."""
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from tradedesk.broker.sim import exchange, market
    from tradedesk.broker.types import OrderRequest

    placed_at = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    later = placed_at + timedelta(minutes=30)
    low = min(
        market.quote("AAPL", placed_at + timedelta(seconds=s)).ask_price for s in range(60, 1800, 5)
    )
    limit = low.quantize(Decimal("0.01"))
    assert limit < market.quote("AAPL", placed_at).ask_price  # it can't fill at once

    account_id = exchange.open_account()
    resting = exchange.SimBroker(account_id, now=lambda: placed_at).submit_order(
        OrderRequest(
            symbol="AAPL",
            side="buy",
            type="limit",
            time_in_force="gtc",
            client_order_id="rest-1",
            qty=Decimal("1"),
            limit_price=limit,
        )
    )
    assert resting.status == "new"

    monkeypatch.setattr(exchange.timezone, "now", lambda: later)
    assert tasks.match_paper_orders() == 1
    filled = exchange.SimOrder.objects.get(pk=resting.id)
    assert (filled.status, filled.filled_qty) == ("filled", 1)
    assert filled.filled_avg_price <= limit


# --- API ----------------------------------------------------------------------


def test_post_sync_returns_202_with_a_task_the_caller_can_follow(eager, brokers, api, trader):
    account = trader.broker_accounts.get()
    brokers[account.pk] = FakeBroker([(1000, broker_order(1))])

    response = api.post("/api/v1/orders/sync/", {"broker_account": account.pk}, format="json")

    assert response.status_code == 202, response.content
    task_id = response.json()["task_id"]
    progress = api.get(f"/api/v1/orders/sync/{task_id}/")
    assert progress.status_code == 200
    body = progress.json()
    assert (body["status"], body["created"], body["broker_account"]) == ("done", 1, account.pk)
    assert body["finished_at"] is not None
    assert Order.objects.get(user=trader).placed_via == "sync"


def test_post_sync_without_an_account_syncs_all_own_accounts(eager, brokers, api, trader):
    brokers[trader.broker_accounts.get().pk] = FakeBroker([(1000, broker_order(1))])

    response = api.post("/api/v1/orders/sync/", {}, format="json")

    assert response.status_code == 202
    run = SyncRun.objects.get(pk=response.json()["task_id"])
    assert (run.broker_account, run.status, run.created, run.user) == (None, "done", 1, trader)


def test_another_users_sync_and_account_are_404(eager, brokers, api, other_api, other_trader):
    theirs = other_trader.broker_accounts.get()
    response = other_api.post("/api/v1/orders/sync/", {}, format="json")
    task_id = response.json()["task_id"]

    assert api.get(f"/api/v1/orders/sync/{task_id}/").status_code == 404
    assert api.get(f"/api/v1/orders/sync/{uuid.uuid4()}/").status_code == 404
    assert api.get("/api/v1/orders/sync/not-a-uuid/").status_code == 404
    before = SyncRun.objects.count()
    assert (
        api.post("/api/v1/orders/sync/", {"broker_account": theirs.pk}, format="json").status_code
        == 404
    )
    assert SyncRun.objects.count() == before


@pytest.mark.parametrize("body", [{"broker_account": "x"}, {"broker_account": -1}, [1, 2]])
def test_bad_sync_requests_are_400_and_queue_nothing(api, body):
    response = api.post("/api/v1/orders/sync/", body, format="json")

    assert response.status_code == 400
    assert not SyncRun.objects.exists()


def test_sync_needs_authentication(client):
    assert client.post("/api/v1/orders/sync/").status_code == 401


def test_a_queue_outage_is_503_and_the_run_is_marked_failed(api, monkeypatch):
    from kombu.exceptions import OperationalError

    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(tasks.run_sync, "apply_async", refuse)

    response = api.post("/api/v1/orders/sync/", {}, format="json")

    assert response.status_code == 503
    assert SyncRun.objects.get().status == "failed"


def test_admin_sync_now_queues_a_sync_per_account(eager, brokers, trader, admin_client):
    account = trader.broker_accounts.get()
    brokers[account.pk] = FakeBroker([(1000, broker_order(1))])

    response = admin_client.post(
        "/admin/accounts/brokeraccount/",
        {"action": "sync_now", "_selected_action": [account.pk]},
    )

    assert response.status_code == 302
    run = SyncRun.objects.get()
    assert (run.trigger, run.status, run.created) == ("admin", "done", 1)
    assert admin_client.get("/admin/orders/syncrun/").status_code == 200
