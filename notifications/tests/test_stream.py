"""The stream forwards a user's notifications to that user's connections only."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from conftest import client_for
from market.tests.stream.conftest import (  # the stream tests' own clean-up, autouse
    _close_consumer_connections,  # noqa: F401
    _fresh_process_stream,  # noqa: F401
)
from market.tests.stream.test_stream_consumer import access_token, frame, messages_until, stream

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def embedded(settings):
    settings.REDIS_URL = ""


async def test_a_fill_notification_reaches_only_its_trader(trader, other_trader):
    alice = stream(f"token={access_token(trader)}&streams=orders")
    mallory = stream(f"token={access_token(other_trader)}&streams=orders")
    for communicator in (alice, mallory):
        await communicator.connect()
        await frame(communicator)

    client = await sync_to_async(client_for)(trader)
    response = await sync_to_async(client.post)(
        "/api/v1/orders/",
        {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market"},
        format="json",
    )
    assert response.status_code == 201, response.content
    placed = response.json()["order"]

    seen = await messages_until(alice, lambda m: m["type"] == "notification")
    [notice] = [m for m in seen if m["type"] == "notification"]
    assert (notice["kind"], notice["order_id"], notice["url"]) == (
        "fill",
        placed["id"],
        f"/orders/{placed['id']}/",
    )
    assert notice["title"].startswith("Filled: buy 1 AAPL @ ")

    await mallory.send_json_to({"action": "ping"})
    seen_by_mallory = await messages_until(mallory, lambda m: m["type"] == "pong")
    assert [m for m in seen_by_mallory if m["type"] == "notification"] == []
    for communicator in (alice, mallory):
        await communicator.disconnect()
