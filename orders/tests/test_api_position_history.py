"""GET /api/v1/positions/history/: the caller's own snapshots, filtered, newest first."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from orders.models import PositionSnapshot

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def snapshot(user, symbol: str, minutes: int, value: str = "1000") -> PositionSnapshot:
    return PositionSnapshot.objects.create(
        user=user,
        broker_account=user.broker_accounts.get(),
        symbol=symbol,
        qty=Decimal("10"),
        side="long",
        avg_entry_price=Decimal("95"),
        current_price=Decimal("100"),
        market_value=Decimal(value),
        cost_basis=Decimal("950"),
        unrealized_pl=Decimal("50"),
        unrealized_plpc=Decimal("0.0526"),
        snapshot_at=T0 + timedelta(minutes=minutes),
    )


@pytest.fixture
def history(trader, other_trader):
    for minutes in (0, 5, 10):
        snapshot(trader, "AAPL", minutes)
        snapshot(trader, "MSFT", minutes)
    snapshot(other_trader, "AAPL", 5, value="999999")


def rows(response):
    assert response.status_code == 200, response.content
    return [(row["symbol"], row["snapshot_at"]) for row in response.json()["results"]]


def test_own_snapshots_newest_first_with_decimals_as_strings(api, history):
    response = api.get("/api/v1/positions/history/")
    listed = rows(response)
    assert len(listed) == 6
    assert [at for _, at in listed] == sorted((at for _, at in listed), reverse=True)
    first = response.json()["results"][0]
    assert first["market_value"] == "1000.000000000"
    assert "999999" not in response.content.decode()


def test_filters_by_symbol_and_time(api, history):
    after = (T0 + timedelta(minutes=5)).isoformat()
    before = (T0 + timedelta(minutes=10)).isoformat()
    listed = rows(
        api.get("/api/v1/positions/history/", {"symbol": "aapl", "after": after, "before": before})
    )
    assert listed == [("AAPL", "2026-11-24T15:05:00Z")]


@pytest.mark.parametrize(
    "query", [{"after": "yesterday"}, {"before": "2026-13-01"}, {"symbol": "X" * 40}]
)
def test_bad_filters_are_400(api, history, query):
    assert api.get("/api/v1/positions/history/", query).status_code == 400


def test_strangers_get_401(client):
    assert client.get("/api/v1/positions/history/").status_code == 401
