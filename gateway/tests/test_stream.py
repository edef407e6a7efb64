"""/alpaca/stream: Alpaca's trade_updates protocol over the desk's order events."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from asgiref.sync import SyncToAsync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from accounts.selectors import default_broker_account
from conftest import place_resting_buy
from gateway import services
from orders import services as orders
from orders.validation import OrderInput
from tradedesk.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _close_consumer_connections():
    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()


def _issue(user, **extra):
    return services.create_api_key(
        user=user, broker_account=default_broker_account(user), label="bot", **extra
    )


async def _open() -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, "/alpaca/stream")
    connected, _ = await communicator.connect()
    assert connected
    return communicator


def _auth(key_id: str, secret: str) -> dict:
    return {"action": "authenticate", "data": {"key_id": key_id, "secret_key": secret}}


async def _send(communicator, message) -> None:
    await communicator.send_to(text_data=json.dumps(message))


async def _receive(communicator, timeout: float = 3) -> dict:
    output = await communicator.receive_output(timeout)
    assert output["type"] == "websocket.send", output
    assert output.get("bytes") is not None, "Alpaca sends binary frames"
    return json.loads(output["bytes"])


async def _authenticated(issued) -> WebsocketCommunicator:
    communicator = await _open()
    await _send(communicator, _auth(issued.api_key.key_id, issued.secret))
    assert await _receive(communicator) == {
        "stream": "authorization", "data": {"status": "authorized", "action": "authenticate"},
    }  # fmt: skip
    await _send(communicator, {"action": "listen", "data": {"streams": ["trade_updates"]}})
    assert await _receive(communicator) == {
        "stream": "listening", "data": {"streams": ["trade_updates"]}
    }  # fmt: skip
    return communicator


async def test_a_fill_arrives_as_a_trade_update(trader):
    issued = await sync_to_async(_issue)(trader)
    communicator = await _authenticated(issued)

    def buy():
        return orders.place_order(
            user=trader,
            broker_account=default_broker_account(trader),
            order_input=OrderInput(
                symbol="AAPL", side="buy", type="market", time_in_force="day", qty=Decimal("3")
            ),
            source="gateway",
        ).order

    order = await sync_to_async(buy)()
    update = await _receive(communicator)
    assert update["stream"] == "trade_updates"
    data = update["data"]
    assert data["event"] == "fill" and data["order"]["id"] == order.broker_order_id
    assert data["order"]["status"] == "filled" and data["qty"] == "3"
    assert Decimal(data["price"]) == order.filled_avg_price and data["execution_id"]
    await communicator.disconnect()


async def test_new_and_canceled_events_and_only_the_keys_account(trader, other_trader):
    issued = await sync_to_async(_issue)(trader)
    communicator = await _authenticated(issued)
    await sync_to_async(place_resting_buy)(other_trader)  # someone else's order: not sent
    order = await sync_to_async(place_resting_buy)(trader)
    assert (await _receive(communicator))["data"]["event"] == "new"
    await sync_to_async(orders.cancel_order)(user=trader, order=order, source="api", actor=trader)
    canceled = (await _receive(communicator))["data"]
    assert canceled["event"] == "canceled" and canceled["order"]["status"] == "canceled"
    assert await communicator.receive_nothing(0.3)
    await communicator.disconnect()


@pytest.mark.parametrize("secret", ["wrong", None])
async def test_wrong_or_revoked_credentials_are_unauthorized_then_closed(trader, secret):
    issued = await sync_to_async(_issue)(trader)
    if secret is None:
        await sync_to_async(services.revoke_api_key)(issued.api_key)
    communicator = await _open()
    await _send(communicator, _auth(issued.api_key.key_id, secret or issued.secret))
    assert await _receive(communicator) == {
        "stream": "authorization", "data": {"status": "unauthorized", "action": "authenticate"},
    }  # fmt: skip
    assert (await communicator.receive_output(3))["type"] == "websocket.close"


async def test_a_key_from_outside_its_allowlist_is_unauthorized(trader):
    issued = await sync_to_async(_issue)(trader, ip_allowlist="10.0.0.0/8")
    communicator = await _open()
    await _send(communicator, _auth(issued.api_key.key_id, issued.secret))
    assert (await _receive(communicator))["data"]["status"] == "unauthorized"


async def test_listen_before_authenticating_is_unauthorized_and_junk_gets_an_error(trader):
    communicator = await _open()
    await _send(communicator, {"action": "listen", "data": {"streams": ["trade_updates"]}})
    assert await _receive(communicator) == {
        "stream": "authorization", "data": {"status": "unauthorized", "action": "listen"},
    }  # fmt: skip
    for junk in (
        "{nope",
        "[1]",
        json.dumps({"action": "dance"}),
        "x" * 10_000,
        json.dumps({"action": "listen", "data": 5}),
    ):
        await communicator.send_to(text_data=junk)
        assert (await _receive(communicator))["stream"] == "error"
    await communicator.send_to(bytes_data=b"\xff\xfe")
    assert (await _receive(communicator))["stream"] == "error"
    issued = await sync_to_async(_issue)(trader)
    await _send(
        communicator,
        {
            "action": "authenticate",
            "data": {"key_id": issued.api_key.key_id, "secret_key": issued.secret},
        },
    )
    assert (await _receive(communicator))["data"]["status"] == "authorized"
    await _send(communicator, {"action": "listen", "data": {"streams": ["trade_updates", "bogus"]}})
    assert (await _receive(communicator))["data"] == {"streams": ["trade_updates"]}
    await _send(communicator, {"action": "listen", "data": {"streams": []}})
    assert (await _receive(communicator))["data"] == {"streams": []}
    await communicator.disconnect()


async def test_revoking_a_key_closes_its_open_stream(trader):
    issued = await sync_to_async(_issue)(trader)
    communicator = await _authenticated(issued)
    await sync_to_async(services.revoke_api_key)(issued.api_key)
    assert (await _receive(communicator))["data"]["status"] == "unauthorized"
    assert (await communicator.receive_output(3))["type"] == "websocket.close"
