"""Each user's choice of channels per kind is honoured: e-mail (Django's backend), the page
and its live frame; a channel turned off sends nothing."""

from __future__ import annotations

import pytest
from django.core import mail

from conftest import SlowChannelLayer
from notifications import services
from notifications.models import NOTICE_KINDS, Notification
from orders import events

from .conftest import market_buy

pytestmark = pytest.mark.django_db


@pytest.fixture
def frames(monkeypatch):
    """The channel-layer messages sent to each group (handed over without waiting: read them
    after events.wait_for_sends())."""
    sent = []

    class Layer:
        async def group_send(self, group, message):
            sent.append((group, message))

    monkeypatch.setattr(services, "get_channel_layer", Layer)
    return sent


@pytest.fixture
def reachable(trader):
    trader.email = "alice@example.com"
    trader.save()
    return trader


def test_a_fill_is_emailed_listed_and_sent_live(reachable, frames, committed, settings):
    settings.DESK_URL = "https://desk.example"
    with committed():
        order = market_buy(reachable)
    events.wait_for_sends()

    [message] = mail.outbox
    note = Notification.objects.get()
    assert message.to == ["alice@example.com"]
    assert message.from_email == settings.DEFAULT_FROM_EMAIL
    assert message.subject == f"TradeDesk: {note.title}"
    assert f"https://desk.example/orders/{order.pk}/" in message.body
    assert note.emailed_at is not None

    [(group, payload)] = [(g, m) for g, m in frames if m["type"] == "notification.message"]
    assert group == f"orders.user.{reachable.pk}"
    [frame] = payload["messages"]
    assert frame | {"created_at": None} == {
        "type": "notification",
        "id": note.pk,
        "kind": "fill",
        "title": note.title,
        "body": "",
        "order_id": order.pk,
        "url": f"/orders/{order.pk}/",
        "created_at": None,
        "count": 1,
    }


def test_no_address_no_email_and_a_redelivered_email_task_sends_nothing(trader, committed):
    with committed():
        market_buy(trader)
    note = Notification.objects.get()
    assert (note.by_email, mail.outbox) == (False, [])

    trader.email = "alice@example.com"
    trader.save()
    Notification.objects.filter(pk=note.pk).update(by_email=True)
    from notifications import tasks

    tasks.send_notification_email.delay(note.pk)
    tasks.send_notification_email.delay(note.pk)  # acks_late redelivery
    assert len(mail.outbox) == 1


def test_a_channel_turned_off_sends_nothing(reachable, frames, committed):
    services.save_preferences(
        reachable, {"page": list(NOTICE_KINDS), "email": ["rejected"], "webhook": []}
    )
    with committed():
        market_buy(reachable)
    assert mail.outbox == []
    assert Notification.objects.get().on_page

    services.save_preferences(reachable, {"page": [], "email": [], "webhook": []})
    events.wait_for_sends()
    frames.clear()
    with committed():
        market_buy(reachable)
    events.wait_for_sends()
    # Nowhere to go: nothing stored, nothing sent live.
    assert Notification.objects.count() == 1
    assert [m for _, m in frames if m["type"] == "notification.message"] == []


def test_a_batch_of_many_sends_the_newest_few_live_and_counts_the_rest(trader, frames, committed):
    from orders.events import Notice

    order = market_buy(trader)  # its own fill's notification is stored, never sent (no commit)
    notices = [Notice("fill", trader.pk, order=order, order_id=order.pk) for _ in range(12)]
    with committed():
        services.deliver(notices)
    events.wait_for_sends()

    [payload] = [m for _, m in frames if m["type"] == "notification.message"]
    sent = payload["messages"]
    assert len(sent) == services.LIVE_FRAMES_PER_BATCH + 1
    assert (sent[0]["kind"], sent[0]["count"]) == ("more", 12 - services.LIVE_FRAMES_PER_BATCH)
    assert sum(frame["count"] for frame in sent) == 12
    assert Notification.objects.count() == 1 + 12


def test_unknown_channels_or_kinds_are_refused(trader):
    from django.core.exceptions import ValidationError

    for chosen in ({"sms": ["fill"]}, {"page": ["everything"]}):
        with pytest.raises(ValidationError):
            services.save_preferences(trader, chosen)
    assert (
        not hasattr(trader, "notification_preferences")
        or trader.notification_preferences.pk is None
    )


def test_each_notice_takes_the_channels_from_its_recipient_as_they_are_then(trader):
    """The INSERT that stores a notification reads the preferences (or the defaults), the
    address, the active endpoints and the account's being active: a change reaches the very
    next notice."""
    from orders.events import Notice

    order = market_buy(trader)

    def channels(kind: str = "fill") -> tuple[bool, bool, bool] | None:
        Notification.objects.all().delete()
        services.deliver([Notice(kind, trader.pk, order=order, order_id=order.pk)])
        return Notification.objects.values_list("on_page", "by_email", "by_webhook").first()

    assert channels() == (True, False, False)  # defaults; no address, no endpoint
    trader.email = "alice@example.com"
    trader.save()
    assert channels() == (True, True, False)
    assert channels("partial_fill") == (True, False, False)  # by default, not e-mailed
    endpoint = services.add_endpoint(trader, "https://hooks.example/desk").endpoint
    assert channels() == (True, True, True)
    services.set_endpoint_active(endpoint, False)
    assert channels() == (True, True, False)
    services.set_endpoint_active(endpoint, True)
    services.save_preferences(trader, {"page": [], "email": ["fill"], "webhook": ["fill"]})
    assert channels() == (False, True, True)
    assert channels("partial_fill") is None  # nowhere to go: not stored
    trader.is_active = False
    trader.save()
    assert channels() is None


@pytest.mark.django_db(transaction=True)  # real commits: the frame follows them
def test_placing_does_not_wait_for_the_live_frame(trader, monkeypatch):
    layer = SlowChannelLayer()
    monkeypatch.setattr(services, "get_channel_layer", lambda: layer)
    order = market_buy(trader)  # placed while the layer still holds the frame
    assert layer.sent == [] and Notification.objects.get().order == order
    layer.release.set()
    events.wait_for_sends()
    [(group, payload)] = layer.sent
    assert group == f"orders.user.{trader.pk}"
    assert [frame["kind"] for frame in payload["messages"]] == ["fill"]
