"""The /approvals/ page in headless Chromium: the queue, approve, reject with a reason."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from conftest import log_in, shot
from orders.models import Order
from orders.tests.test_approvals import big_buy

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def threshold(settings):
    settings.APPROVAL_NOTIONAL = Decimal("1000")


@pytest.fixture
def operator(make_user):
    user = make_user("olga", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="approve_order"))
    return user


def test_operator_approves_one_and_rejects_another(page, trader, operator):
    first, second = big_buy(trader), big_buy(trader, qty="50")
    own = big_buy(operator)

    log_in(page, "olga")
    page.get_by_role("link", name="Approvals").click()
    rows = page.locator("table.orders tbody tr")
    assert rows.count() == 3
    assert "another operator decides it" in rows.nth(2).inner_text()
    shot(page, "approvals-queue")

    rows.nth(0).get_by_role("button", name="Approve").click()
    page.wait_for_url("**/approvals/")
    assert f"Order {first.pk} (AAPL) approved" in page.locator(".flashes").inner_text()
    page.get_by_label(f"Reason for rejecting order {second.pk}").fill("Too large before the close")
    page.get_by_role("button", name="Reject").first.click()
    page.wait_for_url("**/approvals/")
    shot(page, "approvals-after")

    first.refresh_from_db()
    second.refresh_from_db()
    own.refresh_from_db()
    assert (first.status, second.status, own.status) == ("filled", "rejected", "pending_approval")
    assert second.events.last().detail["reason"] == "Too large before the close"
    assert page.locator("table.orders tbody tr").count() == 1


def test_the_page_and_nav_are_for_approvers_only(trader, make_user):
    client = Client()
    client.force_login(trader)
    assert client.get("/approvals/").status_code == 403
    assert b'href="/approvals/"' not in client.get("/orders/").content
    order = big_buy(make_user("bob"))
    assert client.post(f"/approvals/{order.pk}/approve/").status_code == 403
    assert Order.objects.get(pk=order.pk).status == "pending_approval"
