"""Order templates on the ticket page in headless Chromium: save the ticket as a template,
apply it, place from it in a click (its warnings confirmed as the ticket's are), delete it."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from conftest import log_in, shot
from orders import templates
from orders.models import Order, OrderTemplate

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def open_ticket(page):
    page.goto("/orders/new/")
    page.wait_for_selector("#order-ticket[data-enhanced]")  # the ticket's script has run


def test_save_apply_place_and_delete(page, trader):
    log_in(page, "alice")
    open_ticket(page)
    assert "No templates yet" in page.locator("#order-templates").inner_text()
    page.get_by_label("Symbol").fill("aapl")
    page.get_by_label("Type").select_option("limit")
    page.get_by_label("Quantity (shares)").fill("2")
    page.get_by_label("Limit price", exact=True).fill("1")
    page.get_by_label("Time in force").select_option("gtc")
    page.get_by_label("Template name").fill("Cheap Apple")
    page.get_by_role("button", name="Save as template").click()

    page.wait_for_url(re.compile(r"/orders/new/\?template=\d+$"))
    template = OrderTemplate.objects.get(owner=trader)
    assert (template.symbol, template.type, template.qty, template.limit_price) == (
        "AAPL",
        "limit",
        2,
        1,
    )
    assert template.stop_price is None  # the hidden fields of other types are not saved
    assert "Template “Cheap Apple” saved." in page.locator(".flashes").inner_text()
    assert not Order.objects.exists()  # saving places nothing

    # Apply: a fresh ticket filled with the template.
    open_ticket(page)
    assert page.get_by_label("Symbol").input_value() == ""
    page.get_by_role("link", name="Apply Cheap Apple").click()
    page.wait_for_selector("#applied-template")
    assert page.get_by_label("Symbol").input_value() == "AAPL"
    assert page.get_by_label("Type").input_value() == "limit"
    assert page.get_by_label("Quantity (shares)").input_value() == "2"
    assert page.get_by_label("Limit price", exact=True).input_value() == "1"
    assert page.get_by_label("Time in force").input_value() == "gtc"
    shot(page, "ticket-templates")
    page.screenshot(path="/tmp/htpl-ticket-templates.png", full_page=True)
    page.set_viewport_size({"width": 375, "height": 800})
    page.screenshot(path="/tmp/htpl-ticket-templates-375.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # fits a phone
    page.set_viewport_size({"width": 1280, "height": 900})

    # Place in a click: $1 is far below the market, so the ticket asks, as for its own orders.
    page.get_by_role("button", name="Place Cheap Apple").click()
    page.wait_for_selector("#confirm-box:not([hidden])")
    assert "below the market" in page.locator("#ticket-warnings").inner_text()
    assert not Order.objects.exists()
    page.screenshot(path="/tmp/htpl-template-confirm.png", full_page=True)
    page.get_by_role("button", name="Place order anyway").click()
    page.wait_for_url(re.compile(r"/orders/\d+/$"))
    order = Order.objects.get(user=trader)
    assert (order.symbol, order.qty, order.limit_price, order.status) == ("AAPL", 2, 1, "new")

    # Delete.
    open_ticket(page)
    page.get_by_role("button", name="Delete Cheap Apple").click()
    page.wait_for_url(re.compile(r"/orders/new/$"))
    assert "Template “Cheap Apple” deleted." in page.locator(".flashes").inner_text()
    assert page.locator("#order-templates tbody tr").count() == 0
    assert not OrderTemplate.objects.exists()


def test_a_template_without_warnings_places_in_one_click(page, trader):
    templates.save_template(
        owner=trader,
        name="One Apple",
        symbol="AAPL",
        side="buy",
        type="market",
        time_in_force="day",
        qty=Decimal("1"),
    )
    log_in(page, "alice")
    open_ticket(page)
    row = page.locator("#order-templates tbody tr")
    assert row.locator("th").inner_text().startswith("One Apple")
    assert row.locator(".template-order").inner_text() == "buy 1 AAPL market · day"

    row.get_by_role("button", name="Place One Apple").click()

    page.wait_for_url(re.compile(r"/orders/\d+/$"))
    order = Order.objects.get(user=trader)
    assert (order.qty, order.placed_via) == (1, "page")
    assert "Order buy 1 AAPL: filled." in page.locator(".flashes").inner_text()


def test_a_name_already_used_is_said_by_the_name(page, trader):
    templates.save_template(
        owner=trader, name="Mine", symbol="AAPL", side="buy", type="market", time_in_force="day"
    )
    log_in(page, "alice")
    open_ticket(page)
    page.get_by_label("Symbol").fill("MSFT")
    page.get_by_label("Template name").fill("  mine ")
    page.get_by_role("button", name="Save as template").click()

    page.wait_for_selector("#error-name:not(:empty)")
    assert "already have a template" in page.locator("#error-name").inner_text()
    assert page.get_by_label("Symbol").input_value() == "MSFT"  # the ticket is kept
    assert OrderTemplate.objects.count() == 1
    page.screenshot(path="/tmp/htpl-template-name-taken.png", full_page=True)
