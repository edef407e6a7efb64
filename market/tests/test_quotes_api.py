"""GET /api/v1/market/quotes/latest/: the paper exchange's quotes as JSON, decimals as strings."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

pytestmark = pytest.mark.django_db


def test_latest_quotes_for_two_symbols(api):
    response = api.get("/api/v1/market/quotes/latest/?symbols=AAPL,MSFT")
    assert response.status_code == 200
    quotes = response.json()["quotes"]
    assert set(quotes) == {"AAPL", "MSFT"}
    for symbol, quote in quotes.items():
        assert quote["symbol"] == symbol
        for field in ("bid_price", "ask_price", "bid_size", "ask_size"):
            assert isinstance(quote[field], str)
        assert Decimal("0") < Decimal(quote["bid_price"]) < Decimal(quote["ask_price"])
        assert Decimal(quote["bid_size"]) > 0 and Decimal(quote["ask_size"]) > 0
        assert datetime.fromisoformat(quote["timestamp"]).utcoffset().total_seconds() == 0


def test_symbols_are_upper_cased_and_de_duplicated(api):
    response = api.get("/api/v1/market/quotes/latest/?symbols=aapl, AAPL ,brk.b")
    assert response.status_code == 200
    assert sorted(response.json()["quotes"]) == ["AAPL", "BRK.B"]


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?symbols=",
        "?symbols=,,",
        "?symbols=AAPL;DROP",
        "?symbols=TOOLONGSYMBOL",
        "?symbols=A1",
        "?symbols=" + ",".join(f"S{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(101)),
    ],
)
def test_bad_symbols_are_400(api, query):
    response = api.get(f"/api/v1/market/quotes/latest/{query}")
    assert response.status_code == 400
    assert response.json()["symbols"]
