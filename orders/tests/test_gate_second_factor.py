"""Where 2FA is required for orders (TWO_FACTOR_REQUIRED=orders, or an operator's flag), the
gate refuses a place or a replace from a session or token that passed no second factor."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts import services as account_services
from conftest import client_for, place_resting_buy, totp_code
from orders.models import Order

pytestmark = pytest.mark.django_db

ORDER = {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market"}


def _enrolled(user):
    device = account_services.start_enrolment(user).device
    account_services.confirm_enrolment(user=user, otp=totp_code(device))
    return device


def _verified_api(user) -> APIClient:
    token = RefreshToken.for_user(user).access_token
    token[account_services.SECOND_FACTOR_CLAIM] = True
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_the_api_places_only_with_a_verified_token(trader, settings):
    _enrolled(trader)
    settings.TWO_FACTOR_REQUIRED = "orders"

    refused = client_for(trader).post("/api/v1/orders/", ORDER, format="json")

    assert refused.status_code == 403
    assert refused.json()["code"] == "otp_required"
    assert Order.objects.count() == 0
    assert _verified_api(trader).post("/api/v1/orders/", ORDER, format="json").status_code == 201


def test_a_replace_needs_it_too_and_leaves_the_order_as_it_was(trader, settings):
    order = place_resting_buy(trader)
    _enrolled(trader)
    settings.TWO_FACTOR_REQUIRED = "orders"

    refused = client_for(trader).patch(f"/api/v1/orders/{order.pk}/", {"qty": "2"}, format="json")

    assert refused.status_code == 403
    order.refresh_from_db()
    assert (order.status, order.qty) == ("new", 1)
    replaced = _verified_api(trader).patch(
        f"/api/v1/orders/{order.pk}/", {"qty": "2"}, format="json"
    )
    assert replaced.status_code == 200


def test_an_operators_flag_requires_it_of_one_user(trader, other_trader):
    trader.two_factor_required = True
    trader.save()

    assert client_for(trader).post("/api/v1/orders/", ORDER, format="json").status_code == 403
    assert client_for(other_trader).post("/api/v1/orders/", ORDER, format="json").status_code == 201


def test_the_ticket_places_from_a_session_that_passed_the_code(trader, settings):
    device = _enrolled(trader)
    settings.TWO_FACTOR_REQUIRED = "orders"
    browser = Client()
    browser.post("/accounts/login/", {"username": trader.username, "password": "s3cret-Passw0rd!"})
    browser.post("/accounts/login/code/", {"otp": totp_code(device)})

    response = browser.post("/orders/new/", ORDER | {"time_in_force": "day"})

    assert response.status_code == 302, response.content.decode()[:500]
    assert Order.objects.filter(user=trader, placed_via="page").count() == 1
