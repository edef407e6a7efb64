"""/accounts/notifications/: the user's own list (newest first, paginated, mark read), the
preferences form, the webhook endpoints with their delivery log; nobody else's, ever."""

from __future__ import annotations

import re

import pytest

from notifications import services
from notifications.models import (
    Notification,
    NotificationPreferences,
    WebhookDelivery,
    WebhookEndpoint,
)

from .receiver import Receiver

pytestmark = pytest.mark.django_db
URL = "/accounts/notifications/"


def notify(user, title: str, kind: str = "fill", **fields) -> Notification:
    return Notification.objects.create(user=user, kind=kind, title=title, **fields)


@pytest.fixture
def browser(client, trader):
    client.force_login(trader)
    return client


def test_a_stranger_is_sent_to_log_in(client):
    for method, path in (("get", URL), ("post", f"{URL}read/"), ("post", f"{URL}webhooks/")):
        response = getattr(client, method)(path)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_list_is_the_users_own_newest_first_with_the_unread_count(
    browser, trader, other_trader
):
    notify(trader, "Filled: buy 1 AAPL @ 1")
    notify(trader, "Rejected: buy 2 MSFT", kind="rejected")
    notify(trader, "hidden: page channel off", on_page=False)
    notify(other_trader, "Filled: mallory's secret")

    page = browser.get(URL).content.decode()
    rows = re.findall(r'<tr class="notification unread" data-notification="\d+">', page)
    assert len(rows) == 2
    assert page.index("Rejected: buy 2 MSFT") < page.index("Filled: buy 1 AAPL @ 1")
    assert "mallory" not in page and "hidden: page channel off" not in page
    assert re.search(r'id="unread-count" data-count="2"\s*>2<', page)


def test_mark_one_read_then_all(browser, trader):
    first, second = notify(trader, "one"), notify(trader, "two")
    assert browser.post(f"{URL}read/", {"id": first.pk}).status_code == 302
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.read_at is not None and second.read_at is None

    browser.post(f"{URL}read/")
    assert Notification.objects.filter(read_at__isnull=True).count() == 0
    assert 'data-count="0"' in browser.get(URL).content.decode()


@pytest.mark.parametrize("junk", ["abc", "-1", "99999999999999999999999", ""])
def test_another_users_or_a_junk_id_is_a_404_and_changes_nothing(browser, other_trader, junk):
    theirs = notify(other_trader, "theirs")
    for value in (theirs.pk, junk):
        assert browser.post(f"{URL}read/", {"id": value}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_pages_of_the_list(browser, trader):
    Notification.objects.bulk_create(
        [Notification(user=trader, kind="fill", title=f"n{i}") for i in range(30)]
    )
    first = browser.get(URL).content.decode()
    assert first.count('data-notification="') == 25 and "Page 1 of 2" in first
    assert browser.get(f"{URL}?page=2").content.decode().count('data-notification="') == 5
    assert browser.get(f"{URL}?page=junk").status_code == 200


def test_preferences_are_saved_from_the_form(browser, trader):
    page = browser.get(URL).content.decode()
    # Defaults: everything on the page, all but partial fills by e-mail, all by webhook.
    assert re.search(r'name="page:partial_fill"[^>]*checked', page)
    assert not re.search(r'name="email:partial_fill"[^>]*checked', page)

    response = browser.post(URL, {"page:fill": "on", "email:halt_on": "on", "sms:fill": "on"})
    assert response.status_code == 302
    prefs = NotificationPreferences.objects.get(user=trader)
    assert (prefs.page, prefs.email, prefs.webhook) == (["fill"], ["halt_on"], [])


def test_an_endpoint_shows_its_secret_once_and_its_deliveries(browser, trader, committed):
    with Receiver(answers=(500, 200)) as receiver:
        assert browser.post(f"{URL}webhooks/", {"url": receiver.url}).status_code == 302
        page = browser.get(URL).content.decode()
        secret = re.search(r'id="new-webhook-secret">(whsec_[^<]+)<', page).group(1)
        assert secret not in browser.get(URL).content.decode()  # shown once
        endpoint = WebhookEndpoint.objects.get(user=trader)
        assert endpoint.secret == secret
        receiver.secret = secret

        with committed():
            browser.post(f"{URL}webhooks/{endpoint.pk}/test/")
    assert receiver.refused == []

    page = browser.get(URL).content.decode()
    for delivery in WebhookDelivery.objects.all():
        assert f'data-delivery="{delivery.pk}"' in page
    assert "HTTP 500" in page and "HTTP 200" in page and ">delivered<" in page


def test_disable_enable_delete_and_nobody_elses(browser, trader, other_trader):
    mine = services.add_endpoint(trader, "https://hooks.example.com/a").endpoint
    theirs = services.add_endpoint(other_trader, "https://hooks.example.com/b").endpoint

    browser.post(f"{URL}webhooks/{mine.pk}/disable/")
    mine.refresh_from_db()
    assert not mine.active
    browser.post(f"{URL}webhooks/{mine.pk}/enable/")
    mine.refresh_from_db()
    assert mine.active
    for action in ("disable", "test", "delete"):
        assert browser.post(f"{URL}webhooks/{theirs.pk}/{action}/").status_code == 404
    assert browser.post(f"{URL}webhooks/{mine.pk}/explode/").status_code == 404
    assert WebhookEndpoint.objects.get(pk=theirs.pk).active
    browser.post(f"{URL}webhooks/{mine.pk}/delete/")
    assert list(WebhookEndpoint.objects.all()) == [theirs]


@pytest.mark.parametrize("url", ["", "not a url", "ftp://example.com/", "http://127.0.0.1/x"])
def test_a_bad_endpoint_url_is_a_400_and_nothing_is_made(browser, settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    response = browser.post(f"{URL}webhooks/", {"url": url})
    assert response.status_code == 400
    assert 'class="error"' in response.content.decode()
    assert not WebhookEndpoint.objects.exists()
