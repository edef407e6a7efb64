"""The admin's desk overview: what it shows, who sees it, and its queries don't grow with the
number of accounts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import BrokerAccount
from accounts.selectors import default_broker_account
from conftest import log_in, shot
from market.stream.hub import FEED_STATUS_KEY
from orders import halts, services
from orders.models import SyncRun
from orders.validation import OrderInput

OVERVIEW = "/admin/overview/"


def recorded(user, symbol: str = "MSFT"):
    """An order recorded as pending whose broker answer never came."""
    return services.record_submission(
        user=user,
        broker_account=default_broker_account(user),
        request=OrderInput(
            symbol=symbol,
            side="buy",
            type="limit",
            time_in_force="gtc",
            qty=Decimal("3"),
            limit_price=Decimal("10"),
            client_order_id=f"never-answered-{symbol}",
        ),
        source="api",
    )


def run(account, status: str, *, error: str = "", ago: timedelta = timedelta(minutes=5)):
    now = timezone.now()
    sync = SyncRun.objects.create(
        user=account.user,
        broker_account=account,
        status=status,
        error=error,
        created=2,
        updated=1,
        started_at=now - ago,
        finished_at=now - ago + timedelta(seconds=3),
    )
    SyncRun.objects.filter(pk=sync.pk).update(queued_at=now - ago)
    return sync


@pytest.fixture
def desk(trader, make_user, settings):
    """A desk with something in every section."""
    operator = make_user("olga", is_staff=True, is_superuser=True)
    halts.set_halt(
        scope="user", target=trader, mode="reducing", reason="margin call", operator=operator
    )
    settings.APPROVAL_NOTIONAL = Decimal("1000")
    bob = make_user("bob")
    waiting = services.place_order(
        user=bob,
        broker_account=default_broker_account(bob),
        order_input=OrderInput(
            symbol="AAPL", side="buy", type="market", time_in_force="day", qty=Decimal("100")
        ),
    ).order
    pending = recorded(trader, "MSFT")
    settings.ORDER_PENDING_TIMEOUT = 0
    lost = services.reconcile_pending(recorded(trader, "NVDA"))
    account = default_broker_account(trader)
    run(account, "failed", error="broker timed out (upstream 504)", ago=timedelta(hours=2))
    run(account, "done", ago=timedelta(minutes=1))
    cache.set(
        FEED_STATUS_KEY,
        {
            "state": "down",
            "detail": "upstream failed: connection reset; reconnecting",
            "at": datetime.now(UTC).isoformat(),
            "reconnects": 4,
        },
    )
    return {"operator": operator, "waiting": waiting, "pending": pending, "lost": lost}


@pytest.mark.django_db
def test_the_overview_shows_each_section(desk):
    assert desk["waiting"].status == "pending_approval"
    assert desk["lost"].status == "rejected"
    client = Client()
    client.force_login(desk["operator"])
    response = client.get(OVERVIEW)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Active halts (1)" in page and "margin call" in page and "user alice" in page
    assert "Approvals waiting (1)" in page and f"order {desk['waiting'].pk}" in page
    assert "buy 100 AAPL" in page  # as a trader writes it
    assert "Lost orders, last 24 h (1)" in page and "NVDA" in page
    assert "Pending orders, unconfirmed by the broker (1)" in page and "MSFT" in page
    assert "done (schedule)" in page and "2 new, 1 changed" in page
    assert "broker timed out (upstream 504)" in page
    assert "down" in page and "4 reconnects" in page
    assert 'href="/admin/"' in page  # inside the admin (its breadcrumbs and header)
    assert "TradeDesk operations" in page


@pytest.mark.django_db
def test_an_empty_desk_says_so(make_user):
    client = Client()
    client.force_login(make_user("olga", is_staff=True))
    page = client.get(OVERVIEW).content.decode()
    assert "None: the desk trades." in page
    assert "None waiting." in page
    assert "No order was lost." in page
    assert "absent" in page  # no hub reports


@pytest.mark.django_db
def test_the_admin_index_links_to_it(admin_client):
    assert f'href="{OVERVIEW}"' in admin_client.get("/admin/").content.decode()


@pytest.mark.django_db
def test_only_staff_see_it(trader):
    anonymous = Client().get(OVERVIEW)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")
    client = Client()
    client.force_login(trader)
    refused = client.get(OVERVIEW)
    assert refused.status_code == 302 and refused["Location"].startswith("/admin/login/")
    assert client.post(OVERVIEW).status_code in (302, 405)


def _accounts_with_history(make_user, count: int) -> None:
    """`count` more traders, each with a paper account that synced, failed once, and took
    part in a sync of all its user's accounts."""
    for number in range(count):
        user = make_user(f"user{count}x{number}")
        account = default_broker_account(user)
        run(account, "failed", error="boom")
        run(account, "done", ago=timedelta(minutes=1))
        SyncRun.objects.create(user=user, status="done")


@pytest.mark.django_db
def test_its_queries_do_not_grow_with_the_accounts(make_user):
    client = Client()
    client.force_login(make_user("olga", is_staff=True))  # her own account is one of them

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(OVERVIEW).status_code == 200
        return len(captured)

    _accounts_with_history(make_user, 1)
    assert BrokerAccount.objects.count() == 2
    few = queries()
    _accounts_with_history(make_user, 18)
    assert BrokerAccount.objects.count() == 20
    assert queries() == few


@pytest.mark.django_db
def test_a_run_of_all_a_users_accounts_counts_for_each(trader):
    from orders.sync.selectors import last_syncs

    account = default_broker_account(trader)
    run(account, "failed", error="boom", ago=timedelta(minutes=10))
    everyone = SyncRun.objects.create(user=trader, status="done")
    old = run(account, "failed", error="long ago", ago=timedelta(days=3))
    [sync] = last_syncs(
        BrokerAccount.objects.filter(pk=account.pk),
        failures_since=timezone.now() - timedelta(days=1),
    )
    assert sync.last_run == everyone
    assert sync.failures == 1
    assert sync.last_failure.error == "boom"
    assert sync.last_failure != old


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_overview_in_a_browser(page, desk):
    log_in(page, "olga")
    page.goto("/admin/")
    shot(page, "admin-index")
    page.get_by_role("link", name="Desk overview").click()
    page.wait_for_url(f"**{OVERVIEW}")
    shot(page, "admin-overview")
    assert "Desk overview" in page.inner_text("h1")
    assert "margin call" in page.inner_text("#overview-halts")
    assert "broker timed out" in page.inner_text("#overview-syncs")
    assert "down" in page.inner_text("#overview-upstream")
