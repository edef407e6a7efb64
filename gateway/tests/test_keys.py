"""Desk API keys: issued once, stored hashed, scoped, limited, revocable."""

from __future__ import annotations

import pytest

from conftest import client_for
from gateway.models import ApiKey
from gateway.services import secret_digest
from gateway.tests.conftest import AlpacaClient
from orders.models import Order

pytestmark = pytest.mark.django_db
UNAUTHORIZED = {"code": 40110000, "message": "request is not authorized"}


def _issue(api, **body):
    response = api.post("/api/v1/api-keys/", {"label": "bot"} | body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_the_secret_is_shown_once_and_stored_hashed(api, trader):
    issued = _issue(api, ip_allowlist="127.0.0.1/32")
    stored = ApiKey.objects.get(key_id=issued["key_id"])
    assert stored.secret_digest == secret_digest(issued["secret"])
    assert issued["secret"] not in stored.secret_digest
    assert stored.broker_account == trader.broker_accounts.get()
    listed = api.get("/api/v1/api-keys/").json()
    assert [k["key_id"] for k in listed] == [issued["key_id"]]
    assert "secret" not in listed[0] and issued["secret"] not in str(listed)
    bot = AlpacaClient(issued["key_id"], issued["secret"])
    assert bot.get("/v2/account").status_code == 200
    assert api.get(f"/api/v1/api-keys/{stored.pk}/").json()["last_used_at"] is not None


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"APCA-API-KEY-ID": "TDNOSUCHKEY", "APCA-API-SECRET-KEY": "x"},
        {"APCA-API-SECRET-KEY": "wrong"},
    ],
    ids=["no-headers", "unknown-key", "wrong-secret"],
)
def test_wrong_credentials_get_alpacas_401(bot, headers):
    bot.headers = {"APCA-API-KEY-ID": bot.headers["APCA-API-KEY-ID"]} | headers
    answer = bot.get("/v2/account")
    assert answer.status_code == 401 and answer.json() == UNAUTHORIZED


def test_a_revoked_key_is_refused(api, trader):
    issued = _issue(api)
    bot = AlpacaClient(issued["key_id"], issued["secret"])
    key_pk = ApiKey.objects.get(key_id=issued["key_id"]).pk
    assert api.delete(f"/api/v1/api-keys/{key_pk}/").json()["active"] is False
    answer = bot.post("/v2/orders", {"symbol": "AAPL", "qty": 1, "side": "buy", "type": "market"})
    assert answer.status_code == 401 and answer.json() == UNAUTHORIZED
    assert not Order.objects.exists()


def test_a_key_from_outside_its_allowlist_is_refused(api):
    issued = _issue(api, ip_allowlist="10.0.0.0/8")
    answer = AlpacaClient(issued["key_id"], issued["secret"]).get("/v2/account")
    assert answer.status_code == 403 and answer.json()["code"] == 40310000
    inside = AlpacaClient(issued["key_id"], issued["secret"], REMOTE_ADDR="10.1.2.3")
    assert inside.get("/v2/account").status_code == 200


def test_the_users_own_allowlist_applies_to_their_keys(api, trader):
    issued = _issue(api)
    trader.ip_allowlist = "10.0.0.0/8"
    trader.save()
    answer = AlpacaClient(issued["key_id"], issued["secret"]).get("/v2/account")
    assert answer.status_code == 403


def test_a_key_has_its_own_rate_limit_with_alpacas_headers(api):
    issued = _issue(api, rate_limit="2/min")
    bot = AlpacaClient(issued["key_id"], issued["secret"])
    assert [bot.get("/v2/clock").status_code for _ in range(2)] == [200, 200]
    limited = bot.get("/v2/clock")
    assert limited.status_code == 429 and limited.json()["code"] == 42910000
    assert limited["X-RateLimit-Limit"] == "2" and limited["X-RateLimit-Remaining"] == "0"
    assert int(limited["Retry-After"]) >= 1 and int(limited["X-RateLimit-Reset"]) > 0


def test_a_keys_max_notional_refuses_bigger_orders(api):
    issued = _issue(api, max_notional="500")
    bot = AlpacaClient(issued["key_id"], issued["secret"])
    body = {
        "symbol": "AAPL",
        "side": "buy",
        "type": "limit",
        "limit_price": 10,
        "time_in_force": "gtc",
    }
    assert bot.post("/v2/orders", body | {"qty": 50}).status_code == 200
    refused = bot.post("/v2/orders", body | {"qty": 51})
    assert refused.status_code == 403 and "(key_max_notional)" in refused.json()["message"]
    market = bot.post("/v2/orders", {"symbol": "AAPL", "side": "buy", "type": "market", "qty": 10})
    assert market.status_code == 403, market.content
    assert (
        bot.post(
            "/v2/orders", {"symbol": "AAPL", "side": "buy", "type": "market", "notional": 600}
        ).status_code
        == 403
    )
    assert Order.objects.count() == 1


def test_keys_are_per_user_and_scoped_to_own_accounts(api, other_api, other_trader):
    issued = _issue(api)
    mine = ApiKey.objects.get(key_id=issued["key_id"])
    assert other_api.get("/api/v1/api-keys/").json() == []
    assert other_api.delete(f"/api/v1/api-keys/{mine.pk}/").status_code == 404
    assert ApiKey.objects.get(pk=mine.pk).is_active
    theirs = other_trader.broker_accounts.get().pk
    assert (
        api.post(
            "/api/v1/api-keys/", {"label": "x", "broker_account": theirs}, format="json"
        ).status_code
        == 404
    )


@pytest.mark.parametrize(
    "body",
    [
        {"label": "x", "ip_allowlist": "not-a-network"},
        {"label": "x", "rate_limit": "lots"},
        {"label": "x", "max_notional": "-5"},
        {"label": "x", "surprise": True},
        {"label": ""},
        {"label": "x", "broker_account": "abc"},
    ],
)
def test_bad_key_requests_are_400(api, body):
    assert api.post("/api/v1/api-keys/", body, format="json").status_code == 400
    assert not ApiKey.objects.exists()


def test_gateway_orders_are_in_the_desk_api_with_their_events(api, bot):
    body = {"symbol": "AAPL", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day"}
    placed = bot.post("/v2/orders", body).json()
    listed = api.get("/api/v1/orders/").json()["results"]
    assert [(o["broker_order_id"], o["placed_via"]) for o in listed] == [(placed["id"], "gateway")]
    detail = api.get(f"/api/v1/orders/{listed[0]['id']}/").json()
    assert [e["event"] for e in detail["events"]] == ["submitted", "fill"]
    assert {e["source"] for e in detail["events"]} == {"gateway"}


def test_the_page_issues_lists_and_revokes(trader, client):
    client.force_login(trader)
    page = client.get("/accounts/api-keys/")
    assert page.status_code == 200 and b"No API keys yet" in page.content
    account = trader.broker_accounts.get().pk
    created = client.post(
        "/accounts/api-keys/", {"label": "page bot", "broker_account": account}, follow=True
    )
    assert created.redirect_chain == [("/accounts/api-keys/", 302)]
    key = ApiKey.objects.get()
    assert key.key_id.encode() in created.content and b"shown only once" in created.content
    again = client.get("/accounts/api-keys/")
    assert b"shown only once" not in again.content and key.key_id.encode() in again.content
    revoked = client.post(f"/accounts/api-keys/{key.pk}/revoke/")
    assert revoked.status_code == 302 and not ApiKey.objects.get().is_active
    bad = client.post(
        "/accounts/api-keys/", {"label": "x", "broker_account": account, "ip_allowlist": "nope"}
    )
    assert bad.status_code == 400 and ApiKey.objects.count() == 1


def test_the_jwt_api_is_not_a_gateway_credential(trader):
    # A desk JWT in Alpaca's headers is not a key.
    token = client_for(trader)._credentials["HTTP_AUTHORIZATION"].split()[1]
    assert AlpacaClient(token, token).get("/v2/account").status_code == 401


def test_operators_list_and_revoke_keys_in_admin(admin_client, issued):
    listed = admin_client.get("/admin/gateway/apikey/")
    assert listed.status_code == 200 and issued.api_key.key_id.encode() in listed.content
    detail = admin_client.get(f"/admin/gateway/apikey/{issued.api_key.pk}/change/")
    assert detail.status_code == 200 and issued.api_key.secret_digest.encode() not in detail.content
    admin_client.post(
        "/admin/gateway/apikey/",
        {"action": "revoke", "_selected_action": [issued.api_key.pk]},
    )
    assert not ApiKey.objects.get(pk=issued.api_key.pk).is_active
