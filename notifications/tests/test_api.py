"""The thin API: the caller's own notifications (paginated, mark read), preferences, and
webhook endpoints (the secret answered once); another user's are a 404, junk a 400."""

from __future__ import annotations

import pytest

from notifications.models import Notification, NotificationPreferences, WebhookEndpoint

pytestmark = pytest.mark.django_db


def notify(user, title="Filled: buy 1 AAPL @ 1", **fields):
    return Notification.objects.create(user=user, kind="fill", title=title, **fields)


def test_the_list_is_own_newest_first_and_paginated(api, trader, other_trader):
    for n in range(3):
        notify(trader, f"n{n}")
    notify(other_trader, "theirs")
    notify(trader, "off the page", on_page=False)

    first = api.get("/api/v1/notifications/?page_size=2").json()
    assert [n["title"] for n in first["results"]] == ["n2", "n1"]
    rest = api.get(first["next"]).json()
    assert [n["title"] for n in rest["results"]] == ["n0"] and rest["next"] is None


def test_mark_read_own_only(api, trader, other_trader):
    mine, theirs = notify(trader), notify(other_trader)
    answer = api.post(f"/api/v1/notifications/{mine.pk}/read/")
    assert answer.status_code == 200 and answer.json()["read_at"]
    assert api.post(f"/api/v1/notifications/{theirs.pk}/read/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_preferences_read_and_replace(api, trader):
    assert api.get("/api/v1/notifications/preferences/").json()["email"] == [
        "fill", "rejected", "lost", "approval_needed", "approval_decided", "halt_on", "halt_off",
    ]  # fmt: skip
    chosen = {"page": ["fill", "halt_on"], "email": [], "webhook": ["rejected"]}
    answer = api.put("/api/v1/notifications/preferences/", chosen, format="json")
    assert answer.status_code == 200 and answer.json() == chosen
    assert NotificationPreferences.objects.get(user=trader).page == ["fill", "halt_on"]


@pytest.mark.parametrize(
    "body",
    [
        {"page": ["everything"], "email": [], "webhook": []},
        {"page": [], "email": [], "webhook": [], "sms": ["fill"]},
        {"page": "fill", "email": [], "webhook": []},
        [],
        {},
    ],
)
def test_junk_preferences_are_a_400_and_change_nothing(api, body):
    assert api.put("/api/v1/notifications/preferences/", body, format="json").status_code == 400
    assert not NotificationPreferences.objects.exists()


def test_endpoints_crud_with_the_secret_once(api, other_api):
    made = api.post(
        "/api/v1/webhook-endpoints/", {"url": "https://hooks.example.com/x"}, format="json"
    )
    assert made.status_code == 201
    body = made.json()
    assert body["secret"].startswith("whsec_") and body["active"] is True
    url = f"/api/v1/webhook-endpoints/{body['id']}/"

    listed = api.get("/api/v1/webhook-endpoints/").json()
    assert [e["url"] for e in listed] == ["https://hooks.example.com/x"]
    assert "secret" not in listed[0] and "secret" not in api.get(url).json()
    assert api.get(url).json()["deliveries"] == []

    assert other_api.get(url).status_code == 404
    assert other_api.delete(url).status_code == 404
    assert api.patch(url, {"active": False}, format="json").json()["active"] is False
    assert api.patch(url, {"active": "maybe"}, format="json").status_code == 400
    assert api.delete(url).status_code == 204
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("url", ["http://10.0.0.1/", "gopher://x", "", "http://[::1]:80/"])
def test_an_unsafe_or_bad_url_is_a_400(api, settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    answer = api.post("/api/v1/webhook-endpoints/", {"url": url}, format="json")
    assert answer.status_code == 400
    assert not WebhookEndpoint.objects.exists()
