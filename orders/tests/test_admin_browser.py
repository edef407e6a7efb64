"""The operator's console as an operator sees it: numbers as written, the audit trail view-only."""

from __future__ import annotations

import pytest

from conftest import log_in, place_resting_buy, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_order_and_its_events_read_as_a_trader_writes_them(page, trader, make_user):
    operator = make_user("operator", is_staff=True, is_superuser=True)
    order = place_resting_buy(trader, limit="187.5")
    log_in(page, operator.username)

    page.goto(f"/admin/orders/order/{order.pk}/change/")
    shot(page, "admin-order-change")
    text = page.inner_text("#content-main")
    assert "187.5" in text and ".000000" not in text
    assert page.locator(".deletelink").count() == 0  # an order takes its audit trail with it

    page.goto("/admin/orders/orderevent/")
    shot(page, "admin-order-events")
    assert ".000000" not in page.inner_text("#result_list")
    assert (
        page.locator(".object-tools a.addlink").count() == 0
    )  # nothing to add: the trail is append-only
    assert "TradeDesk operations" in page.inner_text("#site-name")
