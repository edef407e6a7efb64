"""The stream's door: its connect closes 1008 outside the user's IP allowlist, behind and not
behind a trusted proxy."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

# The market tests' own clean-up: each test's relay stopped, consumer connections closed.
from market.tests.stream.conftest import (  # noqa: F401 (autouse fixtures)
    _close_consumer_connections,
    _fresh_process_stream,
)
from tradedesk.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

OFFICE = "203.0.113.0/24"


def stream(user, client_address: str, headers=()) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        application,
        f"/api/v1/broker/stream?token={AccessToken.for_user(user)}&symbols=AAPL",
        list(headers),
    )
    communicator.scope["client"] = [client_address, 50123]
    return communicator


async def closed_with(communicator) -> int | None:
    connected, _ = await communicator.connect()
    assert connected
    output = await communicator.receive_output(3)
    await communicator.disconnect()
    return output["code"] if output["type"] == "websocket.close" else None


async def test_the_stream_closes_1008_outside_the_allowlist(make_user, settings):
    settings.REDIS_URL = ""
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    user = await sync_to_async(make_user)("streamer", ip_allowlist=OFFICE)
    assert await closed_with(stream(user, "203.0.113.9")) is None  # the first frame came
    assert await closed_with(stream(user, "198.51.100.1")) == 1008
    # Not behind a trusted proxy: a forged header is ignored.
    forged = [(b"x-forwarded-for", b"203.0.113.9")]
    assert await closed_with(stream(user, "198.51.100.1", forged)) == 1008
    # Behind one, the forwarded address counts.
    assert await closed_with(stream(user, "10.0.0.2", forged)) is None
    outside = [(b"x-forwarded-for", b"198.51.100.1")]
    assert await closed_with(stream(user, "10.0.0.2", outside)) == 1008
