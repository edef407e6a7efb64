"""/healthz: the database, the channel layer and the broker, each ok or named as down."""

from __future__ import annotations

import pytest

from tradedesk import health

pytestmark = pytest.mark.django_db


def test_healthz_is_200_when_everything_is_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "down": [],
        "checks": {"database": "ok", "channel_layer": "ok", "broker": "ok"},
    }
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.parametrize("failing", ["database", "channel_layer", "broker"])
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
