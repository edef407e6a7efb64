"""Bad input at the API edge: 401 without credentials, JSON 404s, 400 for malformed JSON."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from orders.models import Order

pytestmark = pytest.mark.django_db

PROTECTED = [
    ("get", "/api/v1/broker-accounts/"),
    ("post", "/api/v1/broker-accounts/"),
    ("delete", "/api/v1/broker-accounts/1/"),
    ("get", "/api/v1/account/"),
    ("get", "/api/v1/positions/"),
    ("get", "/api/v1/orders/"),
    ("post", "/api/v1/orders/"),
    ("get", "/api/v1/orders/1/"),
    ("get", "/api/v1/market/quotes/latest/?symbols=AAPL"),
    ("get", "/api/v1/market/bars/?symbol=AAPL"),
]


@pytest.mark.parametrize(("method", "url"), PROTECTED)
def test_every_api_endpoint_needs_credentials(method, url):
    response = getattr(APIClient(), method)(url, {}, format="json")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]


@pytest.mark.parametrize(("method", "url"), PROTECTED)
def test_a_garbage_bearer_token_is_401(method, url):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-jwt")
    assert getattr(client, method)(url, {}, format="json").status_code == 401


@pytest.mark.parametrize(
    "url", ["/api/v1/nothing-here/", "/api/v2/orders/", "/api/v1/orders/1/events/x/", "/api/"]
)
def test_unknown_routes_under_api_are_json_404s(api, url):
    response = api.get(url)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


def test_unknown_pages_outside_the_api_are_html_404s(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    "url", ["/api/v1/orders/", "/api/v1/broker-accounts/", "/api/v1/auth/token/"]
)
def test_malformed_json_is_400_and_changes_nothing(api, url):
    response = api.post(url, data='{"symbol": "AAPL", "qty": ', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"
    assert Order.objects.count() == 0


def test_an_order_id_that_is_not_a_number_is_404(api):
    assert api.get("/api/v1/orders/not-a-number/").status_code == 404
    assert api.get(f"/api/v1/orders/{10**30}/").status_code == 404
