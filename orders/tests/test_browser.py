"""The trader pages in headless Chromium (Debian's package, driven by Playwright's sync API).

The app is served by pytest-django's live_server (WSGI): there is no stream there, so the pages
fall back to polling, which is what a trader gets whenever the stream is unreachable.
Screenshots of every page land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.utils import timezone

from conftest import place_resting_buy, require_service
from orders import services
from orders.models import Order, PositionSnapshot
from orders.validation import OrderInput

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(settings.BASE_DIR) / "test-artifacts" / "screenshots"
PASSWORD = "s3cret-Passw0rd!"


@pytest.fixture(scope="module", autouse=True)
def _orm_beside_playwright():
    """Playwright's sync API runs an event loop in this thread; Django's ORM refuses to run in
    a thread with a running loop unless told it's fine (it is: the loop is Playwright's).
    Set only for this module, so no other test (or subprocess) inherits it."""
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture(scope="module")
def chromium():
    require_service("chromium (apt-get install chromium)", os.access(CHROMIUM, os.X_OK))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, live_server):
    context = chromium.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def off_loop(function, **kwargs):
    """Run a service in a thread of its own: the order services publish to the channel layer
    through async_to_sync, which refuses to run beside Playwright's loop in this thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(function, **kwargs).result()


def log_in(page, username: str) -> None:
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/")


@pytest.fixture
def trader_with_position(trader):
    from accounts.selectors import default_broker_account

    off_loop(
        services.place_order,
        user=trader,
        broker_account=default_broker_account(trader),
        order_input=OrderInput(
            symbol="AAPL", side="buy", type="market", time_in_force="day", qty=Decimal("5")
        ),
    )
    return trader


def test_log_in_and_see_the_dashboard(page, trader_with_position):
    page.goto("/")
    assert "/accounts/login/" in page.url
    shot(page, "login")
    log_in(page, "alice")
    assert page.get_by_role("heading", name="Dashboard").is_visible()
    assert page.locator('[data-field="equity"]').inner_text().startswith("$")
    row = page.locator('#positions tr[data-live-symbol="AAPL"]')
    assert row.locator("th").inner_text() == "AAPL"
    assert row.locator('[data-field="unrealized_plpc"]').inner_text().endswith("%")
    assert page.locator("table.orders tbody tr").count() == 1
    shot(page, "dashboard")

    page.set_viewport_size({"width": 375, "height": 800})
    page.reload()
    # Readable on a phone: nothing but the tables' own scroll areas is wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    shot(page, "dashboard-375")


def test_place_an_order_from_the_ticket_confirming_its_warning(page, trader):
    log_in(page, "alice")
    page.get_by_role("link", name="New order").click()
    page.wait_for_selector("#order-ticket[data-enhanced]")  # the ticket's script has run
    assert page.get_by_label("Stop price", exact=True).is_hidden()  # market orders need no prices
    page.get_by_label("Symbol").fill("AAPL")
    page.get_by_label("Type").select_option("limit")
    assert page.get_by_label("Limit price", exact=True).is_visible()
    assert page.get_by_label("Stop price", exact=True).is_hidden()
    page.get_by_label("Quantity (shares)").fill("3")
    page.get_by_label("Limit price", exact=True).fill("1")
    page.get_by_label("Time in force").select_option("gtc")
    page.locator("#ticket-quote").filter(has_text="AAPL bid").wait_for()  # the live quote

    # The desk's validation answers as the trader types: a $1 limit is far below the market.
    warning = page.locator("#ticket-warnings li").first
    warning.wait_for()
    assert "below the market" in warning.inner_text()
    assert not Order.objects.exists()
    shot(page, "ticket")
    # The step can't be missed: the box says why, and the "anyway" click is the consent.
    assert "click “Place order anyway”" in page.locator("#confirm-box").inner_text()
    page.get_by_role("button", name="Place order anyway").click()
    page.wait_for_url(re.compile(r"/orders/\d+/$"))
    order = Order.objects.get(user=trader)
    assert (order.symbol, order.qty, order.limit_price) == ("AAPL", 3, 1)
    assert page.locator('#order [data-field="status"]').inner_text() == order.status == "new"
    assert "Order buy 3 AAPL: new." in page.locator(".flashes").inner_text()
    shot(page, "order-detail")

    page.get_by_role("link", name="Orders", exact=True).click()
    row = page.locator(f'tr[data-live-order="{order.pk}"]')
    assert "AAPL" in row.inner_text()
    assert row.locator('[data-field="status"]').inner_text() == "new"
    shot(page, "history")


@pytest.fixture
def cancel_service(monkeypatch):
    """The order desk's cancel_order when this build has it; otherwise a stand-in doing the same."""
    if hasattr(services, "cancel_order"):
        return

    def cancel_order(*, user, order, source, actor):
        from accounts.services import broker_for

        broker = broker_for(order.broker_account)
        broker.cancel_order(order.broker_order_id)
        services.apply_broker_order(
            order, broker.get_order(order.broker_order_id), source=source, actor=actor
        )

    monkeypatch.setattr(services, "cancel_order", cancel_order, raising=False)


def test_cancel_an_open_order_from_the_history(page, trader, cancel_service):
    order = off_loop(place_resting_buy, user=trader, symbol="MSFT")  # $1: it stays open
    assert order.status == "new"
    log_in(page, "alice")
    page.goto("/orders/?status=open")
    dialogs: list[str] = []

    def accept(dialog):
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.get_by_role("button", name=f"Cancel order {order.pk}").click()
    page.locator(".flashes").filter(has_text="Cancel requested").wait_for()
    assert dialogs == [f"Cancel order {order.pk} (buy MSFT)?"]
    order.refresh_from_db()
    assert order.status == "canceled"
    # The open-orders filter no longer lists it.
    assert page.locator(f'tr[data-live-order="{order.pk}"]').count() == 0
    page.goto(f"/orders/{order.pk}/")
    assert page.locator('#order [data-field="status"]').inner_text() == "canceled"
    assert "canceled" in page.locator("#timeline").inner_text()
    shot(page, "order-canceled")


def test_watch_a_live_quote_change(page, trader):
    log_in(page, "alice")
    page.get_by_role("link", name="Watchlist").click()
    page.get_by_label("Add a symbol").fill("aapl")
    page.get_by_role("button", name="Add").click()
    bid = page.locator('tr[data-live-symbol="AAPL"] [data-field="bid"]')
    first = bid.inner_text()
    assert Decimal(first.replace(",", "")) > 0
    # The simulated market moves every second; the page polls when the stream isn't there.
    page.wait_for_function(
        '(first) => document.querySelector(\'tr[data-live-symbol="AAPL"] [data-field="time"]\')'
        ".textContent !== first",
        arg=page.locator('tr[data-live-symbol="AAPL"] [data-field="time"]').inner_text(),
    )
    assert page.locator("#live-state").inner_text() == "● Updating every few seconds"
    shot(page, "watchlist")


def test_positions_charts_brokers_and_error_pages(page, trader):
    account = trader.broker_accounts.get()
    now = timezone.now()
    for step in range(24):
        value = Decimal(1000 + step * 7 - (step % 5) * 11)
        PositionSnapshot.objects.create(
            user=trader, broker_account=account, symbol="AAPL", qty=5, side="long",
            avg_entry_price=200, current_price=value / 5, market_value=value, cost_basis=1000,
            unrealized_pl=value - 1000, unrealized_plpc=(value - 1000) / 1000,
            snapshot_at=now - timedelta(hours=24 - step),
        )  # fmt: skip
    log_in(page, "alice")
    page.get_by_role("link", name="Positions").click()
    page.wait_for_selector("#bars-chart[data-loaded]")
    assert int(page.locator("#bars-chart").get_attribute("data-loaded")) > 0
    for chart in ("#position-chart", "#portfolio-chart", "#bars-chart"):
        assert page.locator(f"{chart} canvas").count() > 0
    shot(page, "positions-history")

    page.get_by_role("link", name="Brokers").click()
    assert page.get_by_role("row", name="Paper exchange").is_visible()
    assert page.get_by_label("API secret").get_attribute("type") == "password"
    shot(page, "brokers")

    page.goto("/orders/999999/")
    assert page.get_by_role("heading", name="Page not found").is_visible()
    shot(page, "error-404")


def test_ticket_shows_the_validate_endpoints_verdict_as_the_trader_types(page, trader):
    """The ticket speaks the validate contract ({valid, errors, warnings, recommendations});
    the endpoint is the order API's, so its answers are scripted here."""
    import json

    bodies: list[dict] = []

    def validate(route):
        body = json.loads(route.request.post_data)
        bodies.append(body)
        assert route.request.headers["x-csrftoken"]
        if body.get("limit_price") == "0":
            verdict = {
                "valid": False,
                "errors": [{"code": "not_positive", "field": "limit_price", "message": "Too low."}],
                "warnings": [],
                "recommendations": [],
            }
            route.fulfill(status=400, json=verdict)
            return
        verdict = {
            "valid": True,
            "errors": [],
            "warnings": [{"code": "market_closed", "field": None, "message": "It will queue."}],
            "recommendations": [{"code": "bracket", "field": None, "message": "Add a stop."}],
        }
        route.fulfill(status=200, json=verdict)

    log_in(page, "alice")
    page.route("**/api/v1/orders/validate/", validate)
    page.goto("/orders/new/")
    page.wait_for_selector("#order-ticket[data-enhanced]")
    page.get_by_label("Symbol").fill("AAPL")
    page.get_by_label("Type").select_option("limit")
    page.get_by_label("Quantity (shares)").fill("2")
    page.get_by_label("Limit price", exact=True).fill("0")
    page.locator("#error-limit_price").filter(has_text="Too low.").wait_for()
    page.get_by_label("Limit price", exact=True).fill("5")
    page.locator("#ticket-warnings li").filter(has_text="It will queue.").wait_for()
    assert page.locator("#error-limit_price").inner_text() == ""
    assert page.locator("#ticket-recommendations li").inner_text() == "Add a stop."
    assert bodies[-1] == {
        "symbol": "AAPL",
        "side": "buy",
        "type": "limit",
        "qty": "2",
        "limit_price": "5",
        "time_in_force": "day",
        "order_class": "simple",
        "extended_hours": False,
    }
    # The warning is on screen with what the button will do; clicking it is the consent.
    assert page.locator("#confirm-box").is_visible()
    assert not Order.objects.exists()
    shot(page, "ticket-live-validation")
    page.get_by_role("button", name="Place order anyway").click()
    page.wait_for_url(re.compile(r"/orders/\d+/$"))
    assert Order.objects.get(user=trader).limit_price == 5


def test_a_replace_the_gate_refuses_says_why_and_leaves_the_order(page, trader):
    order = off_loop(place_resting_buy, user=trader)
    log_in(page, "alice")
    page.goto(f"/orders/{order.pk}/")
    page.get_by_label("Quantity").fill("5000000")
    page.once("dialog", lambda dialog: dialog.accept())  # "Replace order … with these values?"
    page.get_by_role("button", name="Replace order").click()

    error = page.locator("#replace-errors li[data-code=max_order_quantity]")
    error.wait_for()
    assert "limit of 100,000 shares" in error.inner_text()
    assert page.get_by_label("Quantity").input_value() == "5000000"  # kept to correct
    shot(page, "order-replace-refused")
    order.refresh_from_db()
    assert (order.status, order.qty) == ("new", Decimal("1"))
