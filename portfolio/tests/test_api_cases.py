"""Hand-computed cases through the API: FIFO across partial fills, a short, a replace chain,
a fee, two accounts of one user kept apart, and the attacker's junk."""

from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.utils import timezone

from conftest import client_for

from .conftest import T0, fill, make_order, trade

pytestmark = pytest.mark.django_db


@pytest.fixture
def book(account, second_account):
    # FIFO across partial fills: buy 4@100 + 6@101 (one order), buy 5@105, sell 7@110 + 5@111.
    trade(account, "AAPL", "buy", (4, 100), (6, 101), minutes=0)
    trade(account, "AAPL", "buy", (5, 105), minutes=10)
    trade(account, "AAPL", "sell", (7, 110), (5, 111), minutes=20)
    # A short round trip: sell 10@50, buy 10@45.
    trade(account, "MSFT", "sell", (10, 50), minutes=30)
    trade(account, "MSFT", "buy", (10, 45), minutes=40)
    # A replace chain on both sides: 4@20 then its replacement 6@21; sell 4@25, replaced, 6@26.
    first = trade(account, "TSLA", "buy", (4, 20), minutes=50)
    trade(account, "TSLA", "buy", (6, 21), minutes=51, replaces=first.broker_order_id)
    exit_first = trade(account, "TSLA", "sell", (4, 25), minutes=60)
    trade(account, "TSLA", "sell", (6, 26), minutes=70, replaces=exit_first.broker_order_id)
    # A fee on each side: buy 10@100 (1.00), sell 10@110 (0.50).
    trade(account, "NVDA", "buy", (10, 100), minutes=80, fee="1.00")
    trade(account, "NVDA", "sell", (10, 110), minutes=90, fee="0.50")
    # The second account: buy 5@100, sell 2@90 (a loss); the first account's AAPL is apart.
    trade(second_account, "AAPL", "buy", (5, 100), minutes=100)
    trade(second_account, "AAPL", "sell", (2, 90), minutes=110)


def get(api, path, **params):
    response = api.get(f"/api/v1/portfolio/{path}/", params)
    assert response.status_code == 200, response.content
    return response.json()


def trades_by_symbol(api, **params):
    return {row["symbol"]: row for row in get(api, "trades", **params)["results"]}


def test_round_trips_of_the_hand_computed_cases(api, book, account):
    trips = trades_by_symbol(api, broker_account=account.pk)
    assert set(trips) == {"AAPL", "MSFT", "TSLA", "NVDA"}
    aapl = trips["AAPL"]
    # 4@100 + 6@101 + 2@105 = 1216 in; 7@110 + 5@111 = 1325 out.
    assert (aapl["direction"], aapl["qty"]) == ("long", "12.000000000")
    assert (aapl["entry_price"], aapl["exit_price"]) == ("101.333333", "110.416667")
    assert (aapl["realized_pl"], aapl["realized_pl_pct"]) == ("109.00", "0.0896")
    assert aapl["opened_at"] == "2026-11-02T15:00:00Z"
    assert aapl["closed_at"] == "2026-11-02T15:21:00Z"
    msft = trips["MSFT"]
    assert (msft["direction"], msft["entry_price"], msft["exit_price"]) == (
        "short",
        "50.000000",
        "45.000000",
    )
    assert (msft["realized_pl"], msft["realized_pl_pct"]) == ("50.00", "0.1000")
    tsla = trips["TSLA"]  # one round trip for the chain: (25.6 - 20.6) x 10
    assert (tsla["qty"], tsla["entry_price"], tsla["exit_price"], tsla["realized_pl"]) == (
        "10.000000000",
        "20.600000",
        "25.600000",
        "50.00",
    )
    nvda = trips["NVDA"]  # (110 - 100) x 10 - 1.00 - 0.50
    assert (nvda["fees"], nvda["realized_pl"]) == ("1.50", "98.50")


def test_performance_per_account_and_for_the_user(api, book, account, second_account):
    first = get(api, "performance", broker_account=account.pk)
    assert (first["realized_pl"], first["trades"], first["winning"], first["losing"]) == (
        "307.50",
        4,
        4,
        0,
    )
    assert (first["fees"], first["win_rate"], first["profit_factor"]) == ("1.50", "1.0000", None)
    assert (first["expectancy"], first["largest_win"], first["avg_win"]) == (
        "76.88",
        "109.00",
        "76.88",
    )
    second = get(api, "performance", broker_account=second_account.pk)
    assert (second["realized_pl"], second["trades"], second["losing"], second["largest_loss"]) == (
        "-20.00",
        1,
        1,
        "-20.00",
    )
    both = get(api, "performance")
    assert (both["realized_pl"], both["trades"], both["win_rate"], both["profit_factor"]) == (
        "287.50",
        5,
        "0.8000",
        "15.3750",  # 307.50 / 20.00
    )
    by_symbol = {row["symbol"]: row for row in both["by_symbol"]}
    assert (by_symbol["AAPL"]["realized_pl"], by_symbol["AAPL"]["trades"]) == ("89.00", 2)
    assert by_symbol["AAPL"]["win_rate"] == "0.5000"


def test_open_lots_are_what_fifo_left_per_account(api, book, account, second_account, monkeypatch):
    now = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: now)  # the paper market's price, held still
    (first,) = get(api, "lots", broker_account=account.pk)["results"]
    assert (first["symbol"], first["qty"], first["cost_basis"]) == ("AAPL", "3.000000000", "315.00")
    price = D(first["price"])
    assert price > 0
    assert D(first["unrealized_pl"]) == ((price - 105) * 3).quantize(D("0.01"))
    assert first["acquired_at"] == "2026-11-02T15:10:00Z"
    (second,) = get(api, "lots", broker_account=second_account.pk)["results"]
    assert (second["qty"], second["cost_basis"]) == ("3.000000000", "300.00")
    performance = get(api, "performance")
    unrealized = (price - 105) * 3 + (price - 100) * 3
    assert D(performance["unrealized_pl"]) == unrealized.quantize(D("0.01"))
    assert D(performance["gross_exposure"]) == (price * 6).quantize(D("0.01"))


def test_pnl_calendar_by_day_week_and_month(api, book, account):
    days = get(api, "pnl", broker_account=account.pk, start="2026-11-01", end="2026-11-03")
    assert [(d["period"], d["realized_pl"], d["trades"]) for d in days] == [
        ("2026-11-01", "0.00", 0),
        ("2026-11-02", "307.50", 4),
        ("2026-11-03", "0.00", 0),
    ]
    weeks = get(api, "pnl", interval="week", start="2026-10-26", end="2026-11-08")
    assert [(w["period"], w["realized_pl"], w["trades"]) for w in weeks] == [
        ("2026-10-26", "0.00", 0),
        ("2026-11-02", "287.50", 5),
    ]
    (month,) = get(api, "pnl", interval="month", start="2026-11-01", end="2026-11-30")
    assert (month["period"], month["realized_pl"]) == ("2026-11-01", "287.50")


def test_trades_are_paginated_newest_first(api, book):
    page = get(api, "trades", page_size=2)
    assert page["count"] == 5
    assert [row["symbol"] for row in page["results"]] == ["AAPL", "NVDA"]
    assert page["next"] and page["previous"] is None
    last = get(api, "trades", page_size=2, page=3)
    assert [row["symbol"] for row in last["results"]] == ["AAPL"] and last["next"] is None


def test_fills_list_is_own_and_filtered(api, other_trader, book, account):
    other = other_trader.broker_accounts.get()
    trade(other, "AAPL", "buy", (1, 1), minutes=0)
    response = api.get("/api/v1/fills/", {"symbol": "msft"})
    assert response.status_code == 200
    assert [(f["side"], f["price"]) for f in response.json()["results"]] == [
        ("buy", "45.000000000"),
        ("sell", "50.000000000"),
    ]
    after = (T0 + timedelta(minutes=100)).isoformat()
    rows = api.get("/api/v1/fills/", {"after": after}).json()["results"]
    assert len(rows) == 2 and all(f["broker_account"] != other.pk for f in rows)
    everything = api.get("/api/v1/fills/", {"page_size": 100}).json()["results"]
    assert len(everything) == 15


def test_harvest_candidates_term_and_wash_sale_risk(api, account):
    now = timezone.now()
    old = make_order(account, "AAPL", "buy", 1)
    fill(old, 1, 100000, minutes=0).__class__.objects.filter(order=old).update(
        at=now - timedelta(days=400)
    )
    recent = make_order(account, "MSFT", "buy", 2)
    for days, price in ((20, 100000), (2, 90000)):
        fill(recent, 1, price, minutes=0).__class__.objects.filter(
            order=recent, price=price
        ).update(at=now - timedelta(days=days))
    lots = {(row["symbol"], row["cost_basis"]): row for row in get(api, "lots")["results"]}
    aapl = lots[("AAPL", "100000.00")]
    assert (aapl["term"], aapl["harvest_candidate"], aapl["wash_sale_risk"]) == (
        "long",
        True,
        False,
    )
    for cost in ("100000.00", "90000.00"):  # each bought within 30 days of the other
        msft = lots[("MSFT", cost)]
        assert (msft["term"], msft["harvest_candidate"], msft["wash_sale_risk"]) == (
            "short",
            True,
            True,
        )


def test_empty_data_gives_zeros_and_empty_arrays(api):
    performance = get(api, "performance")
    assert performance["realized_pl"] == "0.00" and performance["trades"] == 0
    assert performance["win_rate"] == "0.0000" and performance["profit_factor"] == "0.0000"
    assert performance["by_symbol"] == []
    assert get(api, "trades")["results"] == [] and get(api, "lots")["results"] == []
    assert api.get("/api/v1/fills/").json()["results"] == []


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("portfolio/history/", {"period": "2Y"}),
        ("portfolio/history/", {"timeframe": "7Min"}),
        ("portfolio/history/", {"period": "1A", "timeframe": "1Min"}),
        ("portfolio/history/", {"broker_account": "abc"}),
        ("portfolio/history/", {"broker_account": "-1"}),
        ("portfolio/history/", {"broker_account": "9" * 40}),
        ("portfolio/performance/", {"period": "'; DROP TABLE"}),
        ("portfolio/pnl/", {"interval": "year"}),
        ("portfolio/pnl/", {"start": "2026-13-01"}),
        ("portfolio/pnl/", {"start": "2026-11-05", "end": "2026-11-01"}),
        ("portfolio/pnl/", {"start": "1900-01-01", "end": "2026-11-01"}),
        ("portfolio/pnl/", {"end": "tomorrow"}),
        ("portfolio/pnl/", {"end": "0001-01-05"}),  # the default start would be before year 1
        ("portfolio/pnl/", {"start": "9999-12-31", "end": "9999-12-31", "interval": "month"}),
        ("fills/", {"symbol": "TOOLONGSYMBOL"}),
        ("portfolio/trades/", {"page": "0"}),
        ("portfolio/trades/", {"page_size": "100000"}),
        ("portfolio/lots/", {"page": "x"}),
        ("fills/", {"after": "yesterday"}),
        ("fills/", {"symbol": "<script>"}),
        ("fills/", {"broker_account": "1.5"}),
    ],
)
def test_junk_parameters_are_400(api, path, query):
    response = api.get(f"/api/v1/{path}", query)
    assert response.status_code == 400, response.content


@pytest.mark.parametrize(
    "path",
    [
        "portfolio/history/",
        "portfolio/performance/",
        "portfolio/pnl/",
        "portfolio/trades/",
        "portfolio/lots/",
        "fills/",
    ],
)
def test_another_users_account_is_404_and_strangers_401(api, other_trader, client, path):
    trade(other_trader.broker_accounts.get(), "AAPL", "buy", (1, 1), minutes=0)
    other_id = other_trader.broker_accounts.get().pk
    assert api.get(f"/api/v1/{path}", {"broker_account": other_id}).status_code == 404
    assert client.get(f"/api/v1/{path}").status_code == 401
    assert client_for(other_trader).get(f"/api/v1/{path}").status_code == 200


def test_the_schema_describes_the_portfolio_endpoints_without_warnings():
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator

    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        schema = SchemaGenerator().get_schema(request=None, public=True)
    problems = [
        message
        for message in [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
        if "portfolio/" in message
    ]
    assert problems == []
    history = schema["paths"]["/api/v1/portfolio/history/"]["get"]
    assert {p["name"] for p in history["parameters"]} >= {"period", "timeframe", "broker_account"}
    assert "/api/v1/fills/" in schema["paths"]


@pytest.mark.parametrize("method", ["lifo", "highest_cost"])
def test_lot_method_setting_changes_the_lots_closed(api, book, account, settings, method):
    settings.LOT_METHOD = method
    # Sell 7@110: the 5@105 lot, then 2 of the 6@101; sell 5@111: 4@101, 1@100.
    # 1325 - (525 + 202 + 404 + 100) = 94; left: 3@100.
    assert trades_by_symbol(api, broker_account=account.pk)["AAPL"]["realized_pl"] == "94.00"
    (lot,) = get(api, "lots", broker_account=account.pk)["results"]
    assert (lot["qty"], lot["cost_basis"]) == ("3.000000000", "300.00")
