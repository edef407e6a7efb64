"""/healthz: the database, the channel layer, the market-data broker and feed, each ok or
named as down; the market-data checks never cost a provider request per hit."""

from __future__ import annotations

import pytest

from market.hub import FEED_STATUS_KEY
from tradedesk import health

pytestmark = pytest.mark.django_db
ALL_OK = {"database": "ok", "channel_layer": "ok", "broker": "ok", "market_data": "ok"}


@pytest.fixture(autouse=True)
def embedded(settings):
    settings.REDIS_URL = ""  # the embedded run (no runstream expected); tests opt into Redis


def test_healthz_is_200_when_everything_is_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "down": [], "checks": ALL_OK}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.parametrize("failing", ["database", "channel_layer", "broker", "market_data"])
def test_healthz_is_503_naming_what_is_down(client, monkeypatch, failing):
    def down():
        raise ConnectionError(f"{failing} unreachable")

    monkeypatch.setitem(health.CHECKS, failing, down)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["down"] == [failing]
    assert body["checks"][failing] == f"down: ConnectionError: {failing} unreachable"
    assert all(state == "ok" for name, state in body["checks"].items() if name != failing)


def test_healthz_only_answers_get(client):
    assert client.post("/healthz").status_code == 405


def test_the_broker_is_probed_once_per_window_however_often_healthz_is_hit(client, monkeypatch):
    probes = []

    class CountingBroker:
        def get_clock(self):
            probes.append(1)
            raise ConnectionError("Alpaca unreachable")

    monkeypatch.setattr(health, "market_data_broker", CountingBroker)
    answers = [client.get("/healthz").json()["checks"]["broker"] for _ in range(5)]
    assert probes == [1]  # one paced request, not five
    assert answers == ["down: ConnectionError: Alpaca unreachable"] * 5


def test_the_feed_state_is_the_hubs_last_status(client, settings):
    from django.core.cache import cache

    at = "2026-12-03T06:00:00+00:00"
    cache.set(FEED_STATUS_KEY, {"state": "down", "detail": "auth failed (402)", "at": at})
    body = client.get("/healthz").json()
    assert body["down"] == ["market_data"]
    assert body["checks"]["market_data"] == f"down: feed down since {at}: auth failed (402)"
    cache.set(FEED_STATUS_KEY, {"state": "up", "detail": "authenticated", "at": at})
    assert client.get("/healthz").status_code == 200


def test_in_production_no_hub_reporting_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/13"  # the layout where runstream holds the hub
    body = client.get("/healthz").json()
    assert body["down"] == ["market_data"]
    assert "no market-data hub is running" in body["checks"]["market_data"]
