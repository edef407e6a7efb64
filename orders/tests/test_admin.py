"""Operators' admin: every changelist loads with its filters and search; secrets never show."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import BrokerAccount
from accounts.selectors import default_broker_account
from orders.models import OrderEvent, PositionSnapshot

from .validation_support import desk_order

pytestmark = pytest.mark.django_db

BROKER_SECRET = "alpaca-secret-value-never-shown-9f3b"


@pytest.fixture
def operator(make_user):
    return make_user("operator", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(client, operator):
    client.force_login(operator)
    return client


@pytest.fixture
def desk_records(trader):
    account = default_broker_account(trader)
    now = timezone.now()
    order = desk_order(
        account,
        broker_order_id="b-1",
        client_order_id="c-1",
        type="limit",
        qty=Decimal("3"),
        limit_price=Decimal("200"),
        submitted_at=now,
    )
    OrderEvent.objects.create(order=order, event="new", status="new", source="api", at=now)
    PositionSnapshot.objects.create(
        user=trader,
        broker_account=account,
        symbol="AAPL",
        qty=Decimal("3"),
        side="long",
        avg_entry_price=Decimal("200"),
        current_price=Decimal("210"),
        market_value=Decimal("630"),
        cost_basis=Decimal("600"),
        unrealized_pl=Decimal("30"),
        unrealized_plpc=Decimal("0.05"),
        snapshot_at=now,
    )
    alpaca = BrokerAccount.objects.create(
        user=trader,
        provider="alpaca",
        paper=True,
        label="Alpaca paper",
        key_id="PKTESTKEY1234WXYZ",
        secret=BROKER_SECRET,
    )
    return {"order": order, "alpaca": alpaca}


@pytest.mark.parametrize(
    "url",
    [
        "/admin/",
        "/admin/orders/order/",
        "/admin/orders/order/?status__exact=new&side__exact=buy&type__exact=limit&q=AAPL",
        "/admin/orders/order/?created_at__gte=2020-01-01+00%3A00%3A00%2B00%3A00&q=c-1",
        "/admin/orders/orderevent/",
        "/admin/orders/orderevent/?source__exact=api&status__exact=new&q=AAPL",
        "/admin/orders/positionsnapshot/",
        "/admin/orders/positionsnapshot/?side__exact=long&q=AAPL",
        "/admin/accounts/brokeraccount/",
        "/admin/accounts/brokeraccount/?provider__exact=alpaca&paper__exact=1&q=alice",
        "/admin/accounts/user/?q=alice",
    ],
)
def test_admin_pages_load_for_a_superuser(admin_client, desk_records, url):
    response = admin_client.get(url)
    assert response.status_code == 200
    if "q=" in url and "user" not in url:
        # The filtered, searched list still finds the record.
        assert response.context["cl"].result_count == 1


def test_admin_search_and_filters_exclude_what_does_not_match(admin_client, desk_records):
    response = admin_client.get("/admin/orders/order/?q=MSFT")
    assert response.context["cl"].result_count == 0
    response = admin_client.get("/admin/orders/order/?status__exact=filled")
    assert response.context["cl"].result_count == 0


def test_the_order_change_page_shows_its_events(admin_client, desk_records):
    response = admin_client.get(f"/admin/orders/order/{desk_records['order'].pk}/change/")
    assert response.status_code == 200
    assert "c-1" in response.content.decode()


def test_the_broker_account_pages_never_show_the_secret(admin_client, desk_records):
    account = desk_records["alpaca"]
    change = admin_client.get(f"/admin/accounts/brokeraccount/{account.pk}/change/")
    listing = admin_client.get("/admin/accounts/brokeraccount/")
    assert change.status_code == listing.status_code == 200
    for response in (change, listing):
        assert BROKER_SECRET not in response.content.decode()
    assert "WXYZ" in listing.content.decode()


def test_saving_the_broker_account_without_a_new_secret_keeps_the_stored_one(
    admin_client, desk_records
):
    account = desk_records["alpaca"]
    response = admin_client.post(
        f"/admin/accounts/brokeraccount/{account.pk}/change/",
        {
            "user": account.user_id,
            "provider": "alpaca",
            "paper": "on",
            "label": "Renamed",
            "key_id": account.key_id,
            "secret": "",
            "is_active": "on",
        },
    )
    assert response.status_code == 302, response.content
    account.refresh_from_db()
    assert (account.label, account.secret) == ("Renamed", BROKER_SECRET)


def test_admin_is_closed_to_traders(client, trader):
    client.force_login(trader)
    response = client.get("/admin/orders/order/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


# --- the operator's console: the audit trail is append-only; numbers as written ----------
@pytest.mark.parametrize("model", ["orderevent", "positionsnapshot"])
def test_the_audit_trail_is_append_only_in_admin_even_for_superusers(
    admin_client, desk_records, model
):
    record = {"orderevent": OrderEvent, "positionsnapshot": PositionSnapshot}[model].objects.get()
    base = f"/admin/orders/{model}/"
    assert admin_client.get(f"{base}add/").status_code == 403
    page = admin_client.get(f"{base}{record.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    form = html.split('id="content-main"')[1]
    assert 'name="_save"' not in form
    assert not re.search(r'<(input(?! type="hidden")|select|textarea)', form)  # nothing to edit
    assert admin_client.post(f"{base}{record.pk}/change/", {"symbol": "X"}).status_code == 403
    assert admin_client.post(f"{base}{record.pk}/delete/", {"post": "yes"}).status_code == 403
    listing = admin_client.get(base).content.decode()
    assert "delete_selected" not in listing
    assert type(record).objects.filter(pk=record.pk).exists()


def test_quantities_and_prices_show_as_a_trader_writes_them(admin_client, desk_records):
    order = desk_records["order"]
    listing = admin_client.get("/admin/orders/order/").content.decode()
    assert ">3<" in listing and "3.000000000" not in listing
    detail = admin_client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert "200.000000000" not in detail and "3.000000000" not in detail
    assert ">200<" in detail.replace("\n", "").replace(" ", "")
    snapshots = admin_client.get("/admin/orders/positionsnapshot/").content.decode()
    assert "0.05" in snapshots and "630.000000000" not in snapshots


def test_orders_list_has_source_and_status_columns_and_filters_and_the_site_its_title(
    admin_client, desk_records
):
    listing = admin_client.get("/admin/orders/order/?placed_via__exact=api&status__exact=new")
    html = listing.content.decode()
    assert listing.status_code == 200
    assert "column-placed_via" in html and "column-status" in html
    assert "By source" in html or "placed via" in html.lower()
    index = admin_client.get("/admin/").content.decode()
    assert "TradeDesk" in index
