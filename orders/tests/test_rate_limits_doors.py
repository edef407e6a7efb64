"""Cancel, validate and the admin's cancel meet the per-user command limits like every door:
429 with Retry-After on the API, a message on the pages and in admin, and nothing changed."""

from __future__ import annotations

import pytest

from conftest import place_resting_buy
from orders.models import Order, OrderEvent

pytestmark = pytest.mark.django_db

ORDER = {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market"}


def _limit(settings, **rates):
    settings.ORDER_COMMAND_RATES = settings.ORDER_COMMAND_RATES | rates


def test_cancels_over_the_limit_are_429_and_leave_the_order_open(settings, api, trader):
    _limit(settings, cancel="1/min")
    first, second = place_resting_buy(trader), place_resting_buy(trader, symbol="MSFT")

    assert api.delete(f"/api/v1/orders/{first.pk}/").status_code == 200
    limited = api.delete(f"/api/v1/orders/{second.pk}/")

    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) > 0
    second.refresh_from_db()
    assert second.is_open
    assert not OrderEvent.objects.filter(order=second, event="cancel_requested").exists()


def test_a_halt_never_blocks_a_cancel(settings, api, trader):
    from orders.models import TradingHalt

    order = place_resting_buy(trader)
    TradingHalt.objects.create(scope=TradingHalt.SCOPE_DESK, mode="halted", reason="drill")

    response = api.delete(f"/api/v1/orders/{order.pk}/")

    assert response.status_code == 200
    assert response.json()["status"] in ("canceled", "pending_cancel")


def test_the_cancel_page_says_when_to_retry(settings, client, trader):
    _limit(settings, cancel="1/min")
    first, second = place_resting_buy(trader), place_resting_buy(trader, symbol="MSFT")
    client.force_login(trader)

    client.post(f"/orders/{first.pk}/cancel/")
    page = client.post(f"/orders/{second.pk}/cancel/", follow=True)

    assert page.status_code == 200
    assert "try again in" in page.content.decode()
    second.refresh_from_db()
    assert second.is_open


def test_validations_over_the_limit_are_429(settings, api):
    _limit(settings, validate="2/min")

    statuses = [
        api.post("/api/v1/orders/validate/", ORDER, format="json").status_code for _ in range(3)
    ]

    assert statuses == [200, 200, 429]
    assert Order.objects.count() == 0


def test_the_admin_cancel_reports_the_operators_limit(settings, client, trader, make_user):
    _limit(settings, cancel="1/min")
    operator = make_user("ops", is_staff=True, is_superuser=True)
    orders = [place_resting_buy(trader), place_resting_buy(trader, symbol="MSFT")]
    client.force_login(operator)

    page = client.post(
        "/admin/orders/order/",
        {"action": "cancel_open_orders", "_selected_action": [o.pk for o in orders]},
        follow=True,
    )

    text = page.content.decode()
    assert "Canceled 1 order(s)." in text
    assert "1 could not be canceled" in text and "try again in" in text
    still_open = [o for o in Order.objects.filter(pk__in=[o.pk for o in orders]) if o.is_open]
    assert len(still_open) == 1
