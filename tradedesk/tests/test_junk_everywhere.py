"""An attacker's bodies and query strings on endpoints and pages: never a 500 (a clear 4xx, or
the page ignoring a parameter it does not use)."""

import pytest

pytestmark = pytest.mark.django_db

JUNK = [
    b"{",
    b"[]",
    b'"x"',
    b"null",
    b'{"broker_account": "abc"}',
    b'{"broker_account": 99999999999999999999999}',
    b'{"provider": {"a": 1}, "label": []}',
    b'{"symbols": "' + b"A" * 5000 + b'"}',
]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/broker-accounts/",
        "/api/v1/orders/sync/",
        "/api/v1/orders/validate/",
        "/api/v1/orders/",
        "/api/v1/auth/token/",
        "/api/v1/auth/token/refresh/",
        "/api/v1/order-templates/",
        "/api/v1/order-templates/1/place/",
        "/api/v1/orders/1/approve/",
        "/api/v1/orders/1/reject/",
        "/api/v1/notifications/1/read/",
        "/api/v1/webhook-endpoints/",
    ],
)
@pytest.mark.parametrize("body", JUNK)
def test_post_junk(api, path, body):
    r = api.generic("POST", path, body, content_type="application/json")
    assert r.status_code < 500, (path, body, r.status_code, r.content[:200])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/api/v1/notifications/preferences/"),
        ("PUT", "/api/v1/order-templates/1/"),
        ("PATCH", "/api/v1/order-templates/1/"),
        ("PATCH", "/api/v1/webhook-endpoints/1/"),
    ],
)
@pytest.mark.parametrize("body", JUNK)
def test_put_and_patch_junk(api, method, path, body):
    r = api.generic(method, path, body, content_type="application/json")
    assert r.status_code < 500, (method, path, body, r.status_code, r.content[:200])


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/market/bars/?symbol=AAPL&start=2026-99-01",
        "/api/v1/market/bars/?symbol=AAPL&timeframe=5Min",
        "/api/v1/market/bars/?symbol=AAPL&start=0001-01-01T00:00:00Z&end=9999-12-31T00:00:00Z&timeframe=1Day",
        "/api/v1/market/quotes/latest/?symbols=" + ",".join(["AAPL"] * 500),
        "/api/v1/market/quotes/latest/?symbols=%00",
        "/api/v1/orders/?status=bogus",
        "/api/v1/orders/?symbol=%00",
        "/api/v1/positions/history/?symbol=A%00",
        "/api/v1/orders/sync/%00/",
        "/api/v1/orders/?after=notadate",
        "/api/v1/orders/?cursor=zzz",
        "/api/v1/orders/?page_size=-1",
        "/api/v1/positions/history/?cursor=%ff",
        "/api/v1/account/?broker_account=-1",
        "/api/v1/account/?broker_account=1e99",
        "/api/v1/orders/sync/not-a-uuid/",
        "/api/v1/orders/99999999999999999999999/",
        "/api/v1/broker-accounts/xyz/",
        "/api/v1/order-templates/?page=zzz",
        "/api/v1/order-templates/?page=-1",
        "/api/v1/order-templates/99999999999999999999999/",
        "/api/v1/notifications/?cursor=zzz",
        "/api/v1/notifications/?page_size=-1",
        "/api/v1/webhook-endpoints/99999999999999999999999/",
        "/api/v1/approvals/?cursor=%00",
        "/metrics?name[]=%00",
    ],
)
def test_get_junk(api, url):
    r = api.get(url)
    assert r.status_code < 500, (url, r.status_code, r.content[:200])


@pytest.mark.parametrize(
    "url",
    [
        "/orders/?cursor=%%%",
        "/orders/?date_from=2026-13-45",
        "/orders/export.csv?status=x",
        "/orders/status/?ids=a,b",
        "/orders/status/?ids=" + ",".join(["9" * 30] * 3),
        "/positions/history/?symbol=%00&days=-5",
        "/positions/history/?period=abc",
        "/watchlist/?x=1",
        "/orders/new/?type=%00",
        "/orders/new/?template=abc",
        "/orders/new/?template=99999999999999999999999",
        "/accounts/notifications/?page=%00",
        "/approvals/?page=-1",
    ],
)
def test_page_junk(client, trader, url):
    client.force_login(trader)
    r = client.get(url)
    assert r.status_code < 500, (url, r.status_code)


@pytest.mark.parametrize(
    "url,data",
    [
        ("/watchlist/add/", {"symbol": "\x00"}),
        ("/watchlist/add/", {"symbol": "A" * 300}),
        ("/orders/new/", {"symbol": "AAPL", "qty": "1e400", "side": "buy", "type": "market"}),
        (
            "/orders/new/",
            {
                "take_profit.limit_price": "abc",
                "symbol": "AAPL",
                "qty": "1",
                "side": "buy",
                "type": "limit",
                "order_class": "bracket",
            },
        ),
        ("/accounts/brokers/", {"label": "x", "key_id": "\x00", "secret": "y", "mode": "live"}),
        ("/orders/1/cancel/", {}),
        ("/orders/1/replace/", {"qty": "NaN"}),
    ],
)
def test_page_post_junk(client, trader, url, data):
    client.force_login(trader)
    r = client.post(url, data)
    assert r.status_code < 500, (url, r.status_code)


HUGE = "9" * 30


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"/accounts/brokers/{HUGE}/default/", 404),
        (f"/accounts/brokers/{HUGE}/remove/", 404),
        (f"/orders/{HUGE}/cancel/", 404),
        (f"/orders/{HUGE}/replace/", 404),
        # Removing what isn't on the watchlist removes nothing and goes back to it.
        ("/watchlist/%00/remove/", 302),
        (f"/watchlist/{'A' * 300}/remove/", 302),
    ],
)
def test_ids_and_symbols_out_of_range_in_page_paths(client, trader, url, expected):
    from market.models import WatchlistItem

    client.force_login(trader)
    assert client.post(url, {}).status_code == expected
    assert trader.broker_accounts.filter(is_active=True).count() == 1
    assert not WatchlistItem.objects.exists()


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_a_huge_order_id_is_404(api, method):
    assert getattr(api, method)(f"/api/v1/orders/{HUGE}/").status_code == 404
