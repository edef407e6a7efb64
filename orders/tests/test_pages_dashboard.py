"""The trader's pages: the dashboard and the order ticket, through a real CSRF-checking client."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.test import Client

from orders.models import Order, SyncRun

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def csrf_token(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.cookies["csrftoken"].value


def buy_one_aapl(client: Client):
    token = csrf_token(client, "/orders/new/")
    return client.post(
        "/orders/new/",
        {
            "csrfmiddlewaretoken": token,
            "symbol": "AAPL",
            "qty": "1",
            "notional": "",
            "side": "buy",
            "type": "market",
            "time_in_force": "day",
            "limit_price": "",
        },
    )


def test_a_stranger_is_sent_to_the_login_page(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"


def test_the_dashboard_shows_the_account_summary(trader):
    response = logged_in(trader).get("/")
    assert response.status_code == 200
    assert response.templates[0].name == "orders/home.html"
    assert response.context["account"].cash == Decimal("100000.00")
    assert '<strong data-field="cash">$100,000.00</strong>' in response.content.decode()
    assert "No positions yet." in response.content.decode()
    assert "No orders yet." in response.content.decode()


def test_the_dashboard_and_history_say_when_the_orders_were_last_synced(trader, other_trader):
    client = logged_in(trader)
    assert "Last synced" not in client.get("/").content.decode()
    finished = datetime(2026, 11, 25, 15, 30, 5, tzinfo=UTC)
    for user, status, at in [
        (trader, "done", finished),
        (trader, "failed", datetime(2026, 11, 25, 16, 0, tzinfo=UTC)),
        (other_trader, "done", datetime(2026, 11, 25, 17, 0, tzinfo=UTC)),
    ]:
        SyncRun.objects.create(
            user=user, broker_account=user.broker_accounts.get(), status=status, finished_at=at
        )

    for url in ("/", "/orders/"):
        page = client.get(url).content.decode()
        assert "Last synced with the broker: 2026-11-25 15:30:05 UTC" in page, url


def test_the_dashboard_shows_positions_and_recent_orders_after_a_trade(trader):
    client = logged_in(trader)
    assert buy_one_aapl(client).status_code == 302
    response = client.get("/")
    [position] = response.context["positions"]
    assert (position.symbol, position.qty) == ("AAPL", Decimal("1"))
    assert [o.symbol for o in response.context["recent_orders"]] == ["AAPL"]
    assert response.context["account"].cash < Decimal("100000")
    page = response.content.decode()
    assert '<th scope="row">AAPL</th>' in page
    assert '<span class="status filled" data-field="status">filled</span>' in page


def test_the_order_ticket_names_its_fields_like_the_api(trader):
    response = logged_in(trader).get("/orders/new/")
    assert response.status_code == 200
    page = response.content.decode()
    for field in ("symbol", "qty", "notional", "side", "type", "time_in_force", "limit_price"):
        assert f'name="{field}"' in page
    assert 'name="csrfmiddlewaretoken"' in page


def test_the_order_ticket_buys_one_aapl_at_market_and_shows_it_filled(trader):
    client = logged_in(trader)
    response = buy_one_aapl(client)
    order = Order.objects.get(user=trader)
    assert response.status_code == 302
    assert response["Location"] == f"/orders/{order.pk}/"
    assert (order.symbol, order.side, order.qty, order.status) == (
        "AAPL",
        "buy",
        Decimal("1"),
        "filled",
    )
    assert order.placed_via == "page"
    detail = client.get(response["Location"])
    assert detail.status_code == 200
    status_badge = '<span class="status filled" data-field="status">filled</span>'
    assert status_badge in detail.content.decode()
    assert [e.event for e in detail.context["events"]] == ["submitted", "fill"]


def test_the_order_ticket_refuses_a_post_without_the_csrf_token(trader):
    client = logged_in(trader)
    response = client.post(
        "/orders/new/", {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market"}
    )
    assert response.status_code == 403
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    "changes",
    [{"qty": "abc"}, {"symbol": ""}, {"side": "hold"}, {"qty": "-1"}],
)
def test_the_order_ticket_shows_errors_for_bad_input_and_places_nothing(trader, changes):
    client = logged_in(trader)
    form = {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"}
    form |= changes
    form["csrfmiddlewaretoken"] = csrf_token(client, "/orders/new/")
    response = client.post("/orders/new/", form)
    assert response.status_code == 400
    [first, *_] = response.context["errors"]
    assert f'<li data-code="{first["code"]}">' in response.content.decode()
    assert not Order.objects.exists()


def test_the_order_pages_need_a_login(client):
    response = client.get("/orders/new/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/orders/new/")


def test_another_traders_order_page_is_404(trader, other_trader):
    buy_one_aapl(logged_in(trader))
    order = Order.objects.get(user=trader)
    assert logged_in(other_trader).get(f"/orders/{order.pk}/").status_code == 404
