"""What the broker says is kept as it said it: statuses and classes the desk has not seen
(never stalling a sync), and the broker's own times on every order."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.apps import apps
from django.utils import timezone

from orders import history, selectors
from orders.models import Order, OrderEvent
from orders.sync import paging, upsert
from tradedesk.broker import BrokerCredentials
from tradedesk.broker.alpaca import AlpacaBroker, convert
from tradedesk.broker.tests.alpaca_fakes import KEY_ID, SECRET, eventually
from tradedesk.broker.tests.test_alpaca_streams import Recorder, order_update_stream, running

from .fake_broker import FakeBroker, at_ns, broker_order
from .validation_support import TUESDAY_OPEN, codes, desk_order, make_desk, order

pytestmark = pytest.mark.django_db

UNSEEN = {
    2: {"status": "pending_review"},
    3: {"order_class": "mleg", "side": "", "symbol": ""},  # an mleg order's sides are its legs'
    4: {"status": "a_status_alpaca_adds_next_year"},
    5: {"order_class": "a_class_alpaca_adds_next_year"},
}


@pytest.fixture
def account(trader):
    return trader.broker_accounts.get()


def stored(account) -> dict[str, tuple[str, str, str]]:
    return {
        o.client_order_id: (o.status, o.order_class, o.side)
        for o in Order.objects.filter(broker_account=account)
    }


def test_statuses_and_classes_the_desk_has_not_seen_never_stall_the_sync(account):
    broker = FakeBroker((n * 1000, broker_order(n, **UNSEEN.get(n, {}))) for n in range(1, 7))

    counts = paging.sync_orders(account, broker=broker)

    assert counts == upsert.SyncCounts(created=6, updated=0, unchanged=0)
    assert stored(account) == {
        "client-1": ("new", "simple", "buy"),
        "client-2": ("pending_review", "simple", "buy"),
        "client-3": ("new", "mleg", ""),
        "client-4": ("a_status_alpaca_adds_next_year", "simple", "buy"),
        "client-5": ("new", "a_class_alpaca_adds_next_year", "buy"),
        "client-6": ("new", "simple", "buy"),
    }
    assert set(OrderEvent.objects.values_list("status", flat=True)) == {
        "new",
        "pending_review",
        "a_status_alpaca_adds_next_year",
    }

    # Later orders still arrive, and the unseen status moves on when the broker says so.
    broker.put(broker_order(7), submitted_ns=7000)
    broker.change(broker_order(2).id, status="canceled", updated_at=at_ns(9000))
    counts = paging.sync_orders(account, broker=broker)

    assert counts.created == 1 and counts.updated == 1
    assert stored(account)["client-7"] == ("new", "simple", "buy")
    assert stored(account)["client-2"] == ("canceled", "simple", "buy")


def test_an_unseen_status_is_open_until_the_broker_says_otherwise(account, trader):
    paging.sync_orders(
        account,
        broker=FakeBroker(
            [
                (1000, broker_order(1, status="filled", filled_qty=Decimal("10"))),
                (2000, broker_order(2, status="a_status_alpaca_adds_next_year")),
            ]
        ),
    )
    unseen = Order.objects.get(client_order_id="client-2")

    assert unseen.is_open
    exposure, _ = selectors.exposure_and_placed_today(account, "AAPL", trader, timezone.now())
    assert exposure == [unseen]
    opened = history.filtered_orders(trader, history.OrderFilters(status="open"))
    closed = history.filtered_orders(trader, history.OrderFilters(status="closed"))
    assert [o.client_order_id for o in opened] == ["client-2"]
    assert [o.client_order_id for o in closed] == ["client-1"]
    # The sync keeps re-reading it until it closes.
    assert paging.sync_watermark(account) == at_ns(2000) - timedelta(microseconds=1)


def test_the_api_lists_unseen_statuses_among_open_orders(account, api):
    paging.sync_orders(
        account, broker=FakeBroker([(1000, broker_order(1, status="pending_review"))])
    )

    listed = api.get("/api/v1/orders/", {"status": "open"})

    assert listed.status_code == 200
    assert [row["status"] for row in listed.json()["results"]] == ["pending_review"]


# --- through alpaca-py and the loopback Alpaca fake ------------------------------------


@pytest.fixture
def alpaca(alpaca_settings) -> AlpacaBroker:
    return AlpacaBroker(
        BrokerCredentials(provider="alpaca", paper=True, key_id=KEY_ID, secret=SECRET)
    )


def test_alpaca_statuses_and_classes_unseen_by_the_desk_or_alpaca_py_sync(
    account, alpaca, fake_alpaca
):
    fake_alpaca.add_order(client_order_id="review", status="pending_review")
    mleg = fake_alpaca.add_order(client_order_id="mleg", qty=2)
    fake_alpaca.orders[mleg["id"]].update(order_class="mleg", side=None, symbol=None)
    # Not even alpaca-py's enums know these yet.
    fake_alpaca.add_order(client_order_id="future", status="a_status_alpaca_adds_next_year")
    future_class = fake_alpaca.add_order(client_order_id="future-class")
    fake_alpaca.orders[future_class["id"]].update(order_class="a_class_alpaca_adds_next_year")

    paging.sync_orders(account, broker=alpaca)
    fake_alpaca.add_order(client_order_id="later")
    paging.sync_orders(account, broker=alpaca)

    assert stored(account) == {
        "review": ("pending_review", "simple", "buy"),
        "mleg": ("new", "mleg", ""),
        "future": ("a_status_alpaca_adds_next_year", "simple", "buy"),
        "future-class": ("new", "a_class_alpaca_adds_next_year", "buy"),
        "later": ("new", "simple", "buy"),
    }


def test_an_alpaca_trade_update_with_an_unseen_status_converts():
    update = convert.order_update_from_alpaca(
        {
            "event": "a_new_event",
            "timestamp": "2026-11-24T15:00:00.123456789Z",
            "order": {
                "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
                "client_order_id": "c-1",
                "created_at": "2026-11-24T15:00:00Z",
                "updated_at": "2026-11-24T15:00:00Z",
                "submitted_at": "2026-11-24T15:00:00Z",
                "expires_at": "2026-11-24T21:00:00Z",
                "symbol": "AAPL",
                "qty": "1",
                "side": "buy",
                "type": "market",
                "time_in_force": "day",
                "order_class": "mleg",
                "status": "a_status_alpaca_adds_next_year",
                "position_intent": "buy_to_open",
                "extended_hours": False,
            },
        }
    )

    assert (update.event, update.order.status, update.order.order_class) == (
        "a_new_event",
        "a_status_alpaca_adds_next_year",
        "mleg",
    )
    assert update.order.position_intent == "buy_to_open"
    assert update.order.expires_at == datetime(2026, 11, 24, 21, 0, tzinfo=UTC)


# --- the broker's times -------------------------------------------------------------


def test_imported_orders_keep_the_brokers_times_and_intent(account):
    created = at_ns(1000)
    expires = created + timedelta(hours=6)
    snapshot = broker_order(
        1,
        created_at=created,
        submitted_at=created + timedelta(milliseconds=3),
        updated_at=created + timedelta(seconds=1),
        expires_at=expires,
        position_intent="buy_to_open",
    )

    paging.sync_orders(account, broker=FakeBroker([(1000, snapshot)]))

    row = Order.objects.get()
    assert (row.created_at, row.broker_created_at) == (created, created)
    assert row.submitted_at == created + timedelta(milliseconds=3)
    assert (row.expires_at, row.position_intent) == (expires, "buy_to_open")

    # A newer snapshot updates what the broker changed, not when the order was created.
    later = created + timedelta(hours=1)
    upsert.upsert_broker_orders(
        account,
        [
            broker_order(
                1,
                created_at=created,
                updated_at=later,
                expires_at=later,
                position_intent="buy_to_open",
            )
        ],
        source="stream",
    )
    row.refresh_from_db()
    assert (row.created_at, row.expires_at) == (created, later)


def test_the_api_shows_the_brokers_expiry_and_intent(account, api):
    expires = at_ns(1000) + timedelta(hours=6)
    paging.sync_orders(
        account,
        broker=FakeBroker(
            [(1000, broker_order(1, expires_at=expires, position_intent="sell_to_close"))]
        ),
    )

    shown = api.get(f"/api/v1/orders/{Order.objects.get().pk}/").json()

    assert shown["position_intent"] == "sell_to_close"
    assert shown["expires_at"].startswith(expires.strftime("%Y-%m-%dT%H:%M:%S"))
    assert shown["created_at"].startswith(at_ns(1000).strftime("%Y-%m-%dT%H:%M:%S"))


def test_an_order_the_desk_placed_keeps_its_own_time(account):
    placed_at = timezone.now()
    pending = desk_order(
        account, client_order_id="client-1", status="pending_new", created_at=placed_at
    )
    broker_created = at_ns(1000)

    paging.sync_orders(account, broker=FakeBroker([(1000, broker_order(1))]))

    pending.refresh_from_db()
    assert pending.broker_order_id == broker_order(1).id
    assert (pending.created_at, pending.broker_created_at) == (placed_at, broker_created)


def test_history_filters_and_cursors_use_the_brokers_times(account, trader, api):
    # Imported today, created at the broker on three different days.
    days = [datetime(2026, 11, day, 15, tzinfo=UTC) for day in (20, 23, 24)]
    paging.sync_orders(
        account,
        broker=FakeBroker(
            (n * 1000, broker_order(n, created_at=day, submitted_at=day))
            for n, day in enumerate(days, start=1)
        ),
    )

    newest_first = history.order_history_page(trader, history.OrderFilters(), page_size=2)
    assert [o.client_order_id for o in newest_first.orders] == ["client-3", "client-2"]
    rest = history.order_history_page(
        trader, history.OrderFilters(), cursor=newest_first.next_cursor, page_size=2
    )
    assert [o.client_order_id for o in rest.orders] == ["client-1"]
    on_the_23rd = history.filtered_orders(
        trader, history.OrderFilters(after=days[1].date(), before=days[1].date())
    )
    assert [o.client_order_id for o in on_the_23rd] == ["client-2"]

    listed = api.get("/api/v1/orders/", {"after": "2026-11-21T00:00:00Z"}).json()["results"]
    assert [row["client_order_id"] for row in listed] == ["client-3", "client-2"]
    assert listed[0]["created_at"].startswith("2026-11-24T15:00:00")


def test_orders_imported_by_sync_do_not_use_up_max_daily_trades(account, trader, settings):
    """Linking an account with 300 orders of the day refused every new order that day."""
    settings.MAX_DAILY_TRADES = 4
    paging.sync_orders(
        account,
        broker=FakeBroker(
            (n * 1000, broker_order(n, created_at=TUESDAY_OPEN, submitted_at=TUESDAY_OPEN))
            for n in range(1, 301)
        ),
    )
    desk = make_desk(trader)

    assert "max_daily_trades" not in codes(desk.validate(order()).errors)

    for _ in range(4):
        desk_order(account, placed_via="api", created_at=TUESDAY_OPEN)
    assert codes(desk.validate(order()).errors) == ["max_daily_trades"]


def test_the_migration_dates_imported_orders_by_the_broker(account):
    submitted = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)
    imported = desk_order(account, placed_via="sync", submitted_at=submitted)
    placed = desk_order(account, placed_via="api", submitted_at=submitted)
    never_submitted = desk_order(account, placed_via="sync", submitted_at=None)
    before = {o.pk: o.created_at for o in (placed, never_submitted)}

    migration = importlib.import_module("orders.migrations.0006_backfill_imported_created_at")
    migration.date_imported_orders_by_the_broker(apps, None)

    assert Order.objects.get(pk=imported.pk).created_at == submitted
    assert {o.pk: o.created_at for o in Order.objects.exclude(pk=imported.pk)} == before


@pytest.mark.asyncio
async def test_an_alpaca_trade_update_with_an_unseen_status_arrives_through_the_stream(
    fake_trading_stream, fake_alpaca, alpaca_credentials
):
    placed = fake_alpaca.add_order(qty=3, type="limit", limit_price=150, time_in_force="gtc")
    placed.update(status="a_status_alpaca_adds_next_year", order_class="mleg")
    recorder = Recorder()
    stream = order_update_stream(recorder, alpaca_credentials)
    async with running(stream):
        await eventually(lambda: any(s.listening for s in fake_trading_stream.connections))
        fake_trading_stream.push_trade_update("a_new_event", placed)
        await eventually(lambda: recorder.items)

    (update,) = recorder.items
    assert (update.event, update.order.status, update.order.order_class) == (
        "a_new_event",
        "a_status_alpaca_adds_next_year",
        "mleg",
    )
