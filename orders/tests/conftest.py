"""Fixtures for the order API tests."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradedesk.broker.sim import market


def _quote_mid(symbol: str) -> Decimal:
    from django.utils import timezone

    return market.quote(symbol, timezone.now()).mid


@pytest.fixture
def place(api):
    """POST an order body (defaults: buy 1 AAPL at market) and return the response."""

    def post(client=None, **body):
        payload = {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market"} | body
        return (client or api).post("/api/v1/orders/", payload, format="json")

    return post


@pytest.fixture
def resting_order(place):
    """An open buy limit order far below the market: it rests, so it can be canceled/replaced."""
    price = (_quote_mid("AAPL") / 2).quantize(Decimal("0.01"))
    response = place(type="limit", limit_price=str(price), time_in_force="gtc")
    assert response.status_code == 201, response.content
    order = response.json()["order"]
    assert order["status"] == "new"
    return order
