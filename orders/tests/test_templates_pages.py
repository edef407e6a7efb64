"""The ticket page's template forms without JavaScript: CSRF, own templates only (404),
bad input re-shows the ticket with the errors and saves nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from orders import templates
from orders.models import Order, OrderTemplate

pytestmark = pytest.mark.django_db

TICKET = {"symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day", "qty": "1"}


@pytest.fixture
def mine(trader):
    return templates.save_template(owner=trader, name="Mine", **(TICKET | {"qty": Decimal("1")}))


@pytest.fixture
def logged_in(client, trader):
    client.force_login(trader)
    return client


def test_apply_fills_the_ticket(logged_in, mine):
    page = logged_in.get("/orders/new/", {"template": mine.pk})

    assert page.status_code == 200
    assert page.context["values"]["symbol"] == "AAPL"
    assert page.context["values"]["qty"] == "1"  # as a trader writes it, not 1.000000000
    assert page.context["applied_template"] == mine


def test_someone_elses_template_is_404_everywhere(client, other_trader, mine):
    client.force_login(other_trader)
    answers = [
        client.get("/orders/new/", {"template": mine.pk}),
        client.post(f"/orders/templates/{mine.pk}/place/"),
        client.post(f"/orders/templates/{mine.pk}/delete/"),
    ]

    assert [a.status_code for a in answers] == [404, 404, 404]
    assert OrderTemplate.objects.filter(pk=mine.pk).exists()
    assert not Order.objects.exists()


@pytest.mark.parametrize("junk", ["abc", "-1", str(2**70), "1e3"])
def test_a_junk_template_id_to_apply_is_404(logged_in, junk):
    assert logged_in.get("/orders/new/", {"template": junk}).status_code == 404


@pytest.mark.parametrize(
    "form",
    [
        TICKET | {"template_name": ""},
        TICKET | {"template_name": "x" * 81},
        TICKET | {"template_name": "Mine "},  # already used
        TICKET | {"template_name": "n", "side": "hold"},
        TICKET | {"template_name": "n", "qty": "-1"},
        TICKET | {"template_name": "n", "qty": "lots"},
        TICKET | {"template_name": "n", "symbol": "A" * 500},
        TICKET | {"template_name": "n", "broker_account": "999999"},
    ],
)
def test_bad_input_to_save_reshows_the_ticket_and_saves_nothing(logged_in, mine, form):
    page = logged_in.post("/orders/templates/", form)

    assert page.status_code == 400
    assert page.context["errors"]
    assert page.context["values"]["symbol"] == form["symbol"]  # the ticket is kept as typed
    assert OrderTemplate.objects.count() == 1


def test_saving_keeps_no_client_order_id_and_places_nothing(logged_in, trader):
    page = logged_in.post(
        "/orders/templates/", TICKET | {"template_name": "n", "client_order_id": "mine-1"}
    )

    template = OrderTemplate.objects.get(owner=trader)
    assert page.status_code == 302 and page.url == f"/orders/new/?template={template.pk}"
    assert template.order_input().client_order_id == ""
    assert not Order.objects.exists()


def test_the_forms_need_csrf(trader, mine):
    client = Client(enforce_csrf_checks=True)
    client.force_login(trader)

    answers = [
        client.post("/orders/templates/", TICKET | {"template_name": "n"}),
        client.post(f"/orders/templates/{mine.pk}/place/"),
        client.post(f"/orders/templates/{mine.pk}/delete/"),
    ]

    assert [a.status_code for a in answers] == [403, 403, 403]
    assert OrderTemplate.objects.count() == 1 and not Order.objects.exists()


def test_get_does_not_place_or_delete(logged_in, mine):
    assert logged_in.get(f"/orders/templates/{mine.pk}/place/").status_code == 405
    assert logged_in.get(f"/orders/templates/{mine.pk}/delete/").status_code == 405
    assert OrderTemplate.objects.exists() and not Order.objects.exists()


def test_a_refused_placement_shows_the_ticket_filled_with_the_template(logged_in, mine):
    from orders.models import TradingHalt

    TradingHalt.objects.create(scope=TradingHalt.SCOPE_DESK, mode="halted", reason="drill")

    page = logged_in.post(f"/orders/templates/{mine.pk}/place/")

    assert page.status_code == 400
    assert [e["code"] for e in page.context["errors"]] == ["trading_halted"]
    assert page.context["values"]["symbol"] == "AAPL"
    assert not Order.objects.exists()


def test_the_ticket_place_rate_counts_template_placements(logged_in, mine, settings):
    settings.ORDER_COMMAND_RATES = settings.ORDER_COMMAND_RATES | {"place": "1/min"}

    first = logged_in.post(f"/orders/templates/{mine.pk}/place/")
    ticket = logged_in.post("/orders/new/", TICKET)

    assert first.status_code == 302 and ticket.status_code == 429
    assert Order.objects.count() == 1


def test_admin_lists_templates_with_decimals_as_written(client, make_user, mine):
    client.force_login(make_user("ops", is_staff=True, is_superuser=True))

    listing = client.get("/admin/orders/ordertemplate/")
    change = client.get(f"/admin/orders/ordertemplate/{mine.pk}/change/")

    assert listing.status_code == change.status_code == 200
    row = listing.content.decode()
    assert "Mine" in row and "alice" in row and ">1<" in row
    assert "1.000000000" not in row


def test_admin_refuses_a_template_on_another_users_account(client, make_user, mine, other_trader):
    from accounts.selectors import default_broker_account

    client.force_login(make_user("ops", is_staff=True, is_superuser=True))
    form = {
        "owner": mine.owner_id,
        "name": "Mine",
        "broker_account": default_broker_account(other_trader).pk,
        "symbol": "AAPL",
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "order_class": "simple",
    }

    page = client.post(f"/admin/orders/ordertemplate/{mine.pk}/change/", form)

    assert page.status_code == 200  # the form again, with the error
    assert "No such broker account." in page.content.decode()
    mine.refresh_from_db()
    assert mine.broker_account is None
