"""The first capability end to end: a trader buys one AAPL on the paper exchange."""

from decimal import Decimal

import pytest

pytestmark = pytest.mark.django_db


def test_trader_buys_one_share_of_aapl_at_market_and_it_fills(api):
    response = api.post(
        "/api/v1/orders/",
        {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"},
        format="json",
    )
    assert response.status_code == 201, response.content
    order = response.json()["order"]
    assert order["status"] == "filled"
    assert order["filled_qty"] == "1.000000000"
    assert Decimal(order["filled_avg_price"]) > 0
    assert [e["event"] for e in order["events"]] == ["submitted", "fill"]

    positions = api.get("/api/v1/positions/").json()
    assert [(p["symbol"], Decimal(p["qty"])) for p in positions] == [("AAPL", Decimal("1"))]
    account = api.get("/api/v1/account/").json()
    spent = Decimal(order["filled_avg_price"])
    assert Decimal(account["cash"]) == (Decimal("100000") - spent).quantize(Decimal("0.01"))
