"""An operator halts a trader from the admin, in a real browser, cancelling their open orders,
then lifts the halt with a reason."""

from __future__ import annotations

import pytest

from conftest import log_in, place_resting_buy, shot
from orders.models import TradingHalt

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_operator_halts_with_cancel_all_then_lifts_with_a_reason(page, trader, make_user):
    operator = make_user("operator", is_staff=True, is_superuser=True)
    resting = place_resting_buy(trader)
    log_in(page, operator.username)

    page.goto("/admin/orders/tradinghalt/add/")
    page.select_option("#id_scope", "user")
    page.evaluate(  # the user field is an autocomplete widget: set its select directly
        "([id, name]) => { const s = document.querySelector('#id_user');"
        " s.append(new Option(name, id, true, true)); }",
        [str(trader.pk), trader.username],
    )
    page.fill("#id_reason", "margin review")
    page.check("#id_cancel_open_orders")
    shot(page, "admin-halt-add")
    page.click("input[name=_save]")
    page.wait_for_selector("text=Canceled 1 order(s).")
    resting.refresh_from_db()
    assert resting.status == "canceled"
    halt = TradingHalt.objects.get()
    assert halt.active and halt.created_by == operator

    page.check(f"input[name=_selected_action][value='{halt.pk}']")
    page.select_option("select[name=action]", "lift_halts")
    page.click("button[name=index]")
    page.fill("#id_reason", "review done")
    page.click("input[name=apply]")
    page.wait_for_selector("text=Lifted 1 halt(s).")
    page.goto(f"/admin/orders/tradinghalt/{halt.pk}/change/")
    shot(page, "admin-halt-lifted")
    halt.refresh_from_db()
    assert (halt.active, halt.lifted_by, halt.lift_reason) == (False, operator, "review done")
