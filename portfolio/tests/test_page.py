"""The /portfolio/ page without JavaScript (tables), its CSV exports and bad parameters."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from .conftest import make_order, trade

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(client, trader):
    client.force_login(trader)
    return client


def test_page_shows_trades_lots_calendar_and_by_symbol_as_tables(browser, account):
    trade(account, "AAPL", "buy", (10, 100), minutes=0)
    trade(account, "AAPL", "sell", (6, 110), minutes=5)
    response = browser.get("/portfolio/", {"period": "all"})
    assert response.status_code == 200
    html = response.content.decode()
    for table in ('id="trades"', 'id="lots"', 'id="pnl-calendar"', 'id="by-symbol"'):
        assert table in html
    assert response.context["summary"]["realized_pl"] == "60.00"
    assert [t["qty"] for t in response.context["trades"]] == ["6.000000000"]
    assert [lot["qty"] for lot in response.context["lots"]] == ["4.000000000"]
    weeks = response.context["calendar_weeks"]
    assert len(weeks) == 5 and all(len(week) == 7 for week in weeks[:-1])
    assert date.fromisoformat(weeks[0][0]["period"]).weekday() == 0  # Monday first
    assert "vendor/lightweight-charts/lightweight-charts.standalone.production.mjs" in html


@pytest.mark.parametrize(
    "query",
    [
        {"period": "5Y"},
        {"timeframe": "1Sec"},
        {"broker_account": "x"},
        {"period": "all", "timeframe": "1Min"},
    ],
)
def test_bad_parameters_are_400_pages(browser, query):
    assert browser.get("/portfolio/", query).status_code == 400
    assert browser.get("/portfolio/trades.csv", {"broker_account": "x"}).status_code == 400


def test_another_users_account_is_404(browser, other_trader):
    other = other_trader.broker_accounts.get().pk
    assert browser.get("/portfolio/", {"broker_account": other}).status_code == 404
    assert browser.get("/portfolio/lots.csv", {"broker_account": other}).status_code == 404


def test_strangers_are_sent_to_log_in(client):
    response = client.get("/portfolio/")
    assert response.status_code == 302 and "/login" in response["Location"]


def test_csv_exports_escape_formula_cells_and_keep_numbers(browser, account):
    # A symbol a broker should never send, but the export must not run it as a formula.
    order = make_order(account, "=HYPER", "buy", 1)
    from .conftest import fill

    fill(order, 1, 5, minutes=0)
    trade(account, "AAPL", "buy", (2, 100), minutes=1)
    trade(account, "AAPL", "sell", (2, 90), minutes=2)
    lots = list(csv.reader(io.StringIO(browser.get("/portfolio/lots.csv").content.decode())))
    assert lots[0][:3] == ["broker_account", "symbol", "side"]
    assert lots[1][1] == "'=HYPER"
    trades = list(csv.reader(io.StringIO(browser.get("/portfolio/trades.csv").content.decode())))
    assert trades[1][1] == "AAPL"
    assert trades[1][trades[0].index("realized_pl")] == "-20.00"  # a number, not escaped
