"""The trader pages through Django's test client: status, context, isolation, query counts."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.html import escape

from accounts.services import StreamToken
from orders import history, services, validation
from orders.models import Order, PositionSnapshot
from orders.tests.pages_support import make_orders
from tradedesk.broker.errors import AuthenticationFailed, CredentialsUnreadable

pytestmark = pytest.mark.django_db

PAGES = [
    "/",
    "/orders/",
    "/orders/new/",
    "/positions/history/",
    "/watchlist/",
    "/accounts/brokers/",
]


@pytest.fixture
def browser(client, trader):
    client.force_login(trader)
    return client


def queries_for(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


def market_buy(client, symbol="AAPL", qty="2"):
    return client.post(
        "/orders/new/",
        {"symbol": symbol, "qty": qty, "side": "buy", "type": "market", "time_in_force": "day"},
    )


@pytest.mark.parametrize("url", PAGES)
def test_every_page_sends_a_stranger_to_the_login_page(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("url", PAGES)
def test_every_page_renders_in_the_layout_with_navigation(browser, url):
    response = browser.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<nav aria-label="Main">' in html
    assert 'aria-current="page"' in html
    assert "alice" in html  # the account bar


# --- dashboard -------------------------------------------------------------------------------


def test_dashboard_shows_the_account_day_pl_positions_and_recent_orders(browser, trader):
    assert market_buy(browser).status_code == 302
    response = browser.get("/")
    context = response.context
    assert context["account"].equity > 0
    assert context["day_pl"] == context["account"].equity - context["account"].last_equity
    assert [(p.symbol, p.qty) for p in context["positions"]] == [("AAPL", Decimal("2"))]
    assert [o.symbol for o in context["recent_orders"]] == ["AAPL"]
    assert context["clock"].next_close > context["clock"].timestamp
    html = response.content.decode()
    assert 'data-live-symbol="AAPL"' in html
    assert "Day P&amp;L" in html


def test_dashboard_queries_do_not_grow_with_the_number_of_orders(browser, trader):
    make_orders(trader, 10)
    queries_for(browser, "/")  # the session's first look works out (and keeps) last equity
    with_ten = queries_for(browser, "/")
    make_orders(trader, 90)
    assert queries_for(browser, "/") == with_ten


# --- order ticket ----------------------------------------------------------------------------


def test_ticket_places_a_market_order_and_shows_its_detail(browser, trader):
    response = market_buy(browser)
    order = Order.objects.get(user=trader)
    assert response["Location"] == f"/orders/{order.pk}/"
    assert (order.placed_via, order.status, order.filled_qty) == ("page", "filled", Decimal("2"))
    page = browser.get(response["Location"])
    assert "Order buy 2 AAPL: filled." in page.content.decode()  # the flash
    assert [e.event for e in page.context["events"]] == ["submitted", "fill"]


@pytest.mark.parametrize("refusal", [CredentialsUnreadable(), AuthenticationFailed("refused")])
def test_ticket_answers_unusable_broker_keys_with_a_page_and_places_nothing(
    browser, trader, monkeypatch, refusal
):
    def broker_for(account):
        raise refusal

    monkeypatch.setattr(services, "broker_for", broker_for)
    response = market_buy(browser)

    assert response.status_code == 503
    assert escape(refusal.message) in response.content.decode()
    assert not Order.objects.exists()


def test_ticket_shows_errors_beside_their_field_and_places_nothing(browser, trader):
    response = browser.post(
        "/orders/new/",
        {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "limit", "time_in_force": "day"},
    )
    assert response.status_code == 400
    assert response.context["field_errors"] == {
        "limit_price": ["A limit order needs a limit price."]
    }
    html = response.content.decode()
    assert 'id="error-limit_price" data-error-for="limit_price" role="alert">A limit order' in html
    assert 'value="AAPL"' in html  # the trader's input is kept
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"qty": "lots"}, "qty"),
        ({"qty": "1", "notional": "5"}, "qty"),
        ({"qty": "1", "symbol": "not a symbol"}, "symbol"),
        ({"qty": "1", "side": "sideways"}, "side"),
        ({"qty": "1", "take_profit.limit_price": "abc"}, "take_profit__limit_price"),
    ],
)
def test_ticket_rejects_bad_input_with_a_4xx(browser, body, field):
    data = {"symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day"} | body
    response = browser.post("/orders/new/", data)
    assert response.status_code == 400
    assert field in response.context["field_errors"]
    assert not Order.objects.exists()


def test_ticket_sends_bracket_legs_as_the_apis_nested_body():
    post = {
        "symbol": " aapl ",
        "qty": "1",
        "limit_price": "",
        "take_profit.limit_price": "250",
        "stop_loss.stop_price": "150",
        "csrfmiddlewaretoken": "x",
        "confirm_warnings": "1",
    }
    from orders.views import _order_body

    assert _order_body(post) == {
        "symbol": "aapl",
        "qty": "1",
        "take_profit": {"limit_price": "250"},
        "stop_loss": {"stop_price": "150"},
        "extended_hours": False,
    }


@pytest.fixture
def price_warning(monkeypatch):
    """A validator that warns about every valid order (as the real one does for far limits)."""
    real = validation.validate_order

    def warn(order_input, broker):
        verdict = real(order_input, broker)
        if verdict.valid and not verdict.warnings:
            verdict.warnings.append(
                validation.Issue("price_far_from_market", "limit_price", "Far from the market.")
            )
        return verdict

    monkeypatch.setattr(validation, "validate_order", warn)


def test_ticket_asks_to_confirm_warnings_before_placing(browser, trader, price_warning):
    order = {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "limit", "limit_price": "1"}
    response = browser.post("/orders/new/", order | {"time_in_force": "gtc"})
    assert response.status_code == 200
    assert response.context["needs_confirmation"] is True
    assert [w["code"] for w in response.context["warnings"]] == ["price_far_from_market"]
    assert 'name="confirm_warnings"' in response.content.decode()
    assert not Order.objects.exists()

    confirmed = browser.post(
        "/orders/new/", order | {"time_in_force": "gtc", "confirm_warnings": "1"}
    )
    assert confirmed.status_code == 302
    placed = Order.objects.get(user=trader)
    assert (placed.status, placed.limit_price) == ("new", Decimal("1"))


def test_ticket_reuses_a_client_order_id_only_for_the_same_order(browser, trader):
    body = {
        "symbol": "AAPL",
        "qty": "1",
        "side": "buy",
        "type": "market",
        "client_order_id": "mine-1",
    }
    assert browser.post("/orders/new/", body).status_code == 302
    conflict = browser.post("/orders/new/", body | {"qty": "3"})
    assert conflict.status_code == 409
    assert Order.objects.filter(user=trader).count() == 1


def test_ticket_prefills_from_the_query_string(browser):
    response = browser.get("/orders/new/?symbol=MSFT&side=sell")
    assert response.context["values"]["symbol"] == "MSFT"
    assert response.context["values"]["side"] == "sell"


# --- order history ---------------------------------------------------------------------------


def test_history_pages_by_keyset_without_gaps_or_repeats(browser, trader, monkeypatch):
    monkeypatch.setattr(history, "PAGE_SIZE", 4)
    orders = make_orders(trader, 10)
    # Ties on created_at are broken by id.
    Order.objects.filter(pk__in=[o.pk for o in orders[3:7]]).update(created_at=orders[3].created_at)
    seen, url = [], "/orders/"
    while url:
        response = browser.get(url)
        seen += [o.pk for o in response.context["page"].orders]
        next_query = response.context["next_query"]
        url = f"/orders/?{next_query}" if next_query else None
    expected = list(
        Order.objects.filter(user=trader)
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)
    )
    assert seen == expected
    assert len(seen) == 10


def test_history_filters_by_status_symbol_side_and_dates(browser, trader):
    make_orders(trader, 2, symbol="AAPL", status="new")
    make_orders(trader, 3, symbol="MSFT", status="filled", side="sell")
    old = make_orders(trader, 1, symbol="MSFT", status="canceled", side="sell")[0]
    Order.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))

    def symbols(query):
        response = browser.get(f"/orders/?{query}")
        assert response.status_code == 200
        return sorted(o.symbol + ":" + o.status for o in response.context["page"].orders)

    assert symbols("status=open") == ["AAPL:new", "AAPL:new"]
    assert symbols("status=closed&symbol=msft") == ["MSFT:canceled"] + ["MSFT:filled"] * 3
    assert symbols("side=sell&status=filled") == ["MSFT:filled"] * 3
    today = timezone.now().date()
    assert len(symbols(f"after={today - timedelta(days=1)}")) == 5
    day = (timezone.now() - timedelta(days=10)).date()
    assert symbols(f"after={day}&before={day}") == ["MSFT:canceled"]


@pytest.mark.parametrize(
    "query", ["status=bogus", "after=yesterday", "symbol=not+one", "side=up", "cursor=garbage!!"]
)
def test_history_rejects_bad_filters_with_a_400(browser, trader, query):
    make_orders(trader, 1)
    response = browser.get(f"/orders/?{query}")
    assert response.status_code == 400
    assert response.context["page"] is None


def test_history_shows_only_the_traders_own_orders(browser, trader, other_trader):
    mine = make_orders(trader, 2)
    make_orders(other_trader, 3)
    response = browser.get("/orders/")
    assert {o.pk for o in response.context["page"].orders} == {o.pk for o in mine}


def test_history_queries_do_not_grow_with_the_number_of_orders(browser, trader):
    make_orders(trader, 10)
    with_ten = queries_for(browser, "/orders/")
    make_orders(trader, 90)
    assert queries_for(browser, "/orders/") == with_ten


def test_history_offers_cancel_and_replace_only_on_open_orders(browser, trader):
    open_order = make_orders(trader, 1, status="new")[0]
    filled = make_orders(trader, 1, status="filled")[0]
    html = browser.get("/orders/").content.decode()
    assert f'action="/orders/{open_order.pk}/cancel/"' in html
    assert f'href="/orders/{open_order.pk}/#replace"' in html
    assert f'action="/orders/{filled.pk}/cancel/"' not in html
    assert "data-confirm=" in html


def test_csv_export_has_the_filtered_rows(browser, trader, other_trader):
    make_orders(trader, 2, symbol="AAPL")
    make_orders(trader, 3, symbol="MSFT")
    make_orders(other_trader, 4, symbol="AAPL")
    response = browser.get("/orders/export.csv?symbol=AAPL")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 2
    assert {row["symbol"] for row in rows} == {"AAPL"}
    assert rows[0]["limit_price"] == "10.000000000"  # Decimal text, never a float


def test_csv_export_rejects_bad_filters(browser):
    assert browser.get("/orders/export.csv?after=never").status_code == 400


# --- order detail, statuses, cancel, replace -------------------------------------------------


def test_detail_is_404_for_someone_elses_order(browser, other_trader):
    theirs = make_orders(other_trader, 1)[0]
    assert browser.get(f"/orders/{theirs.pk}/").status_code == 404
    assert browser.post(f"/orders/{theirs.pk}/cancel/").status_code == 404


def test_detail_queries_do_not_grow_with_the_number_of_events(browser, trader):
    order = make_orders(trader, 1)[0]
    few = queries_for(browser, f"/orders/{order.pk}/")
    for _ in range(20):
        order.events.create(event="accepted", status="new", source="sync", at=timezone.now())
    assert queries_for(browser, f"/orders/{order.pk}/") == few


def test_statuses_endpoint_reports_only_own_orders(browser, trader, other_trader):
    mine = make_orders(trader, 2)
    theirs = make_orders(other_trader, 1)[0]
    ids = ",".join(str(o.pk) for o in [*mine, theirs])
    body = browser.get(f"/orders/status/?ids={ids}").json()
    assert sorted(o["id"] for o in body["orders"]) == sorted(o.pk for o in mine)
    assert Decimal(body["orders"][0]["filled_qty"]) == 0
    assert browser.get("/orders/status/?ids=1,x").status_code == 400
    many = ",".join(str(i) for i in range(1, 200))
    assert browser.get(f"/orders/status/?ids={many}").status_code == 400


def test_cancel_calls_the_desks_cancel_service(browser, trader, monkeypatch):
    order = make_orders(trader, 1)[0]
    calls = []
    monkeypatch.setattr(services, "cancel_order", lambda **kw: calls.append(kw), raising=False)
    response = browser.post(f"/orders/{order.pk}/cancel/", {"next": "/orders/"}, follow=True)
    assert response.redirect_chain[-1][0] == "/orders/"
    assert calls == [{"user": trader, "order": order, "source": "page", "actor": trader}]
    assert f"Cancel requested for order {order.pk}" in response.content.decode()


def test_cancel_never_redirects_off_site(browser, trader, monkeypatch):
    order = make_orders(trader, 1)[0]
    monkeypatch.setattr(services, "cancel_order", lambda **kw: None, raising=False)
    response = browser.post(f"/orders/{order.pk}/cancel/", {"next": "https://evil.example/"})
    assert response["Location"] == f"/orders/{order.pk}/"


def test_cancel_of_a_closed_order_changes_nothing(browser, trader, monkeypatch):
    order = make_orders(trader, 1, status="filled")[0]
    calls = []
    monkeypatch.setattr(services, "cancel_order", lambda **kw: calls.append(kw), raising=False)
    response = browser.post(f"/orders/{order.pk}/cancel/", follow=True)
    assert calls == []
    assert "nothing to cancel" in response.content.decode()


def test_replace_sends_the_changes_to_the_desks_replace_service(browser, trader, monkeypatch):
    order = make_orders(trader, 1)[0]
    replacement = make_orders(trader, 1)[0]
    calls = []

    def replace(**kwargs):
        calls.append(kwargs)
        return services.Placement(order=replacement, created=True)

    monkeypatch.setattr(services, "replace_order", replace, raising=False)
    response = browser.post(f"/orders/{order.pk}/replace/", {"limit_price": "11.5"})
    assert response["Location"] == f"/orders/{replacement.pk}/"
    assert calls[0]["changes"].limit_price == Decimal("11.5")
    assert calls[0]["changes"].qty is None
    empty = browser.post(f"/orders/{order.pk}/replace/", {}, follow=True)
    assert "Change at least one field" in empty.content.decode()
    assert len(calls) == 1


# --- positions history -----------------------------------------------------------------------


def test_positions_history_charts_snapshots_per_symbol_and_equity_per_account(browser, trader):
    account = trader.broker_accounts.get()
    now = timezone.now()
    for minutes, (symbol, value) in enumerate(
        [("AAPL", "100"), ("MSFT", "50"), ("AAPL", "110"), ("MSFT", "55")]
    ):
        PositionSnapshot.objects.create(
            user=trader, broker_account=account, symbol=symbol, qty=1, side="long",
            avg_entry_price=1, current_price=value, market_value=value, cost_basis=1,
            unrealized_pl=Decimal(value) - 1, unrealized_plpc=0,
            snapshot_at=now - timedelta(minutes=10) + timedelta(minutes=minutes // 2),
        )  # fmt: skip
    response = browser.get("/positions/history/?symbol=AAPL")
    context = response.context
    assert context["symbols"] == ["AAPL", "MSFT"]
    assert [p["market_value"] for p in context["position_points"]] == [
        "100.000000000",
        "110.000000000",
    ]
    # The portfolio line is each account's equity, read from the portfolio history API.
    assert context["equity_accounts"] == [{"id": account.pk, "label": account.label}]
    assert context["equity_period"] == "1W"
    assert "portfolio_points" not in context
    html = response.content.decode()
    assert 'data-history-url="/api/v1/portfolio/history/"' in html
    assert 'id="position-points"' in html
    assert "vendor/lightweight-charts/lightweight-charts.standalone.production.mjs" in html


def test_positions_history_without_snapshots_and_with_bad_parameters(browser):
    response = browser.get("/positions/history/?days=lots&bars=<script>")
    assert response.status_code == 200
    assert response.context["position_points"] == []
    assert response.context["bars_symbol"] == "AAPL"
    assert response.context["days"] == 7


# --- watchlist -------------------------------------------------------------------------------


def test_watchlist_add_and_remove_symbols(browser, trader, other_trader):
    assert browser.post("/watchlist/add/", {"symbol": "msft"}).status_code == 302
    browser.post("/watchlist/add/", {"symbol": "AAPL"})
    response = browser.get("/watchlist/")
    assert response.context["symbols"] == ["MSFT", "AAPL"]
    symbol, quote, trade = response.context["rows"][0]
    assert trade.price > 0
    assert (symbol, quote.symbol) == ("MSFT", "MSFT")
    assert quote.bid_price <= quote.ask_price
    html = response.content.decode()
    assert 'data-live-symbol="MSFT"' in html

    browser.post("/watchlist/MSFT/remove/")
    assert browser.get("/watchlist/").context["symbols"] == ["AAPL"]
    browser.force_login(other_trader)
    assert browser.get("/watchlist/").context["symbols"] == []


@pytest.mark.parametrize(
    ("symbol", "message"),
    [("", "Give at least one symbol"), ("NOT A", "Not a valid symbol"), ("ZZZZZ", "not a symbol")],
)
def test_watchlist_rejects_bad_symbols(browser, symbol, message):
    response = browser.post("/watchlist/add/", {"symbol": symbol}, follow=True)
    assert message in response.content.decode()
    assert response.context["symbols"] == []


def test_watchlist_refuses_duplicates(browser):
    browser.post("/watchlist/add/", {"symbol": "AAPL"})
    response = browser.post("/watchlist/add/", {"symbol": "aapl"}, follow=True)
    assert "already on your watchlist" in response.content.decode()
    assert response.context["symbols"] == ["AAPL"]


# --- stream token, error pages ---------------------------------------------------------------


def test_stream_token_is_a_short_lived_stream_only_token_for_the_trader(browser, trader):
    response = browser.post("/accounts/stream-token/")
    assert response.status_code == 200
    token = StreamToken(response.json()["access"])
    assert str(token["user_id"]) == str(trader.pk)
    assert token["exp"] - token["iat"] <= 60
    assert response["Cache-Control"].startswith("max-age=0")
    assert browser.get("/accounts/stream-token/").status_code == 405


def test_stream_token_needs_a_session_and_csrf(client, trader):
    assert client.post("/accounts/stream-token/").status_code == 302
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(trader)
    assert strict.post("/accounts/stream-token/").status_code == 403


def test_error_pages_use_the_layout_but_the_api_keeps_json(browser):
    page = browser.get("/no/such/page/")
    assert page.status_code == 404
    html = page.content.decode()
    assert "Page not found" in html and 'class="topbar"' in html
    api = browser.get("/api/v1/no-such-thing/")
    assert api.status_code == 404
    assert api.json()["code"] == "not_found"


@pytest.mark.parametrize("code", [400, 403, 404, 500])
def test_every_error_template_renders_without_a_request(code):
    from django.template.loader import render_to_string

    html = render_to_string(f"{code}.html")
    assert f"Error {code}" in html
    assert 'class="topbar"' in html
