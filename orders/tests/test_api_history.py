"""Order history: filters, cursor pagination, ownership and ids that are not orders."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders.models import Order
from tradedesk.broker.sim import market

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(place, resting_order):
    """An open AAPL limit buy, then filled: an AAPL buy, an MSFT buy and an AAPL sell."""
    place()
    place(symbol="MSFT")
    # A marketable sell limit: a market sell would be refused as a wash trade against the
    # open buy limit, a limit above that buy's price is not.
    bid = market.quote("AAPL", timezone.now()).bid_price
    place(
        side="sell",
        type="limit",
        limit_price=str((bid * Decimal("0.99")).quantize(Decimal("0.01"))),
    )
    return Order.objects.order_by("id")


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [order["id"] for order in response.json()["results"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", 4),
        ("?status=all", 4),
        ("?status=open", 1),
        ("?status=closed", 3),
        ("?status=filled", 3),
        ("?status=new", 1),
        ("?status=canceled", 0),
        ("?symbol=aapl", 3),
        ("?symbol=MSFT", 1),
        ("?side=sell", 1),
        ("?side=buy&symbol=AAPL&status=open", 1),
    ],
)
def test_filters(api, history, query, expected):
    assert len(ids(api.get(f"/api/v1/orders/{query}"))) == expected


def test_after_and_before_filter_on_creation_time(api, history):
    first = history.first()
    Order.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(days=3))
    cutoff = (timezone.now() - timedelta(days=1)).isoformat()

    assert ids(api.get("/api/v1/orders/", {"before": cutoff})) == [first.pk]
    assert first.pk not in ids(api.get("/api/v1/orders/", {"after": cutoff}))
    assert len(ids(api.get("/api/v1/orders/", {"after": cutoff}))) == 3


@pytest.mark.parametrize(
    "query",
    [
        "status=bogus",
        "side=hold",
        "after=yesterday",
        "before=2026-13-45T00:00:00Z",
        "after=99999-01-01T00:00:00Z",
        "symbol=" + "A" * 50,
        "symbol=AA%00PL",
    ],
)
def test_bad_filter_values_are_400(api, history, query):
    response = api.get(f"/api/v1/orders/?{query}")
    assert response.status_code == 400, response.content


def test_newest_first_with_a_cursor_through_every_page(api, history):
    seen, url = [], "/api/v1/orders/?page_size=3"
    while url:
        page = api.get(url).json()
        seen += [order["id"] for order in page["results"]]
        url = page["next"]
    assert seen == sorted(history.values_list("id", flat=True), reverse=True)


def test_a_garbled_cursor_is_a_4xx(api, history):
    assert api.get("/api/v1/orders/?cursor=%%%garbage").status_code == 404


def test_list_shows_only_the_callers_orders(api, other_api, history):
    assert ids(other_api.get("/api/v1/orders/")) == []
    assert len(ids(api.get("/api/v1/orders/"))) == 4


def test_one_order_with_its_events(api, history):
    order = history.get(symbol="MSFT")
    body = api.get(f"/api/v1/orders/{order.pk}/").json()
    assert body["id"] == order.pk
    assert [event["event"] for event in body["events"]] == ["submitted", "fill"]


def test_another_users_order_is_404(other_api, history):
    response = other_api.get(f"/api/v1/orders/{history.first().pk}/")
    assert response.status_code == 404
    assert "symbol" not in response.json()


@pytest.mark.parametrize(
    "order_id", ["abc", "1.5", "-1", "0x10", "99999999999999999999999999", "0", "%00"]
)
def test_ids_that_are_no_order_are_json_404(api, history, order_id):
    response = api.get(f"/api/v1/orders/{order_id}/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"


def test_the_sync_path_is_not_taken_for_an_order_id(api):
    # Owned by the sync endpoint; here it must at least never reach the order detail view.
    response = api.get("/api/v1/orders/sync/")
    assert response.status_code in (404, 405)


def test_anonymous_requests_are_401(client, history):
    assert client.get("/api/v1/orders/").status_code == 401
    assert client.get(f"/api/v1/orders/{history.first().pk}/").status_code == 401
