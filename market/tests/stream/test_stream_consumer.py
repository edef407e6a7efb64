"""The broker stream end to end through the ASGI app: auth, protocol, quotes, own orders."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from prometheus_client import REGISTRY
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from conftest import client_for
from tradedesk.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = (b"origin", b"http://127.0.0.1")


@pytest.fixture(autouse=True)
def embedded(settings):
    # The embedded run: hub and relay in this process, in memory (the Redis layout has its
    # own test, with real processes).
    settings.REDIS_URL = ""


def access_token(user) -> str:
    return str(AccessToken.for_user(user))


def stream(query: str, headers=(ORIGIN,)) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, f"/api/v1/broker/stream?{query}", list(headers))


async def frame(communicator, timeout: float = 3) -> list[dict]:
    messages = json.loads(await communicator.receive_from(timeout))
    assert isinstance(messages, list) and messages
    return messages


async def messages_until(communicator, predicate, timeout: float = 3) -> list[dict]:
    """Frames' messages, flattened, up to the frame holding one that satisfies predicate."""
    seen = []
    while True:
        messages = await frame(communicator, timeout)
        seen.extend(messages)
        if any(predicate(message) for message in messages):
            return seen


def last_of(kind: str, messages: list[dict]) -> dict:
    return [m for m in messages if m["type"] == kind][-1]


async def assert_refused_with_1008(communicator) -> None:
    connected, _ = await communicator.connect()
    assert connected
    closing = await communicator.receive_output()
    assert closing["type"] == "websocket.close" and closing["code"] == 1008
    assert await communicator.receive_nothing()


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    return ".".join([header, payload, ("A" if signature[0] != "A" else "B") + signature[1:]])


def expired(user) -> str:
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=1))
    return str(token)


@pytest.mark.parametrize(
    "make_query",
    [
        pytest.param(lambda user: "symbols=AAPL", id="no-token"),
        pytest.param(lambda user: "token=not-a-jwt", id="malformed"),
        pytest.param(lambda user: "token=" + tampered(access_token(user)), id="tampered"),
        pytest.param(lambda user: "token=" + expired(user), id="expired"),
        pytest.param(lambda user: f"token={RefreshToken.for_user(user)}", id="refresh-token"),
    ],
)
async def test_a_bad_token_is_closed_with_1008_and_nothing_sent(trader, make_query):
    # A refresh token is recorded in the database (the blacklist): build it off the loop.
    await assert_refused_with_1008(stream(await sync_to_async(make_query)(trader)))


async def test_an_inactive_users_token_is_closed_with_1008(make_user):
    user = await sync_to_async(make_user)("sleeper", is_active=False)
    await assert_refused_with_1008(stream(f"token={access_token(user)}"))


async def test_a_foreign_browser_origin_is_refused_but_an_api_client_without_origin_is_not(
    trader,
):
    foreign = stream(f"token={access_token(trader)}", headers=[(b"origin", b"https://evil.test")])
    assert (await foreign.connect())[0] is False
    api_client = stream(f"token={access_token(trader)}&symbols=AAPL", headers=[])
    assert (await api_client.connect())[0] is True
    assert (await frame(api_client))[0]["type"] == "subscription"
    await api_client.disconnect()


async def test_first_frame_is_the_subscription_then_quotes_and_trades_flow(trader):
    communicator = stream(f"token={access_token(trader)}&symbols=aapl,MSFT&streams=quotes,trades")
    assert (await communicator.connect())[0]
    first = await frame(communicator)
    assert first[0] == {
        "type": "subscription",
        "symbols": ["AAPL", "MSFT"],
        "streams": ["quotes", "trades"],
    }
    seen = first + await messages_until(
        communicator, lambda m: m["type"] == "trade" and m["symbol"] == "MSFT"
    )
    quotes = {m["symbol"]: m for m in seen if m["type"] == "quote"}
    assert set(quotes) == {"AAPL", "MSFT"}
    quote = quotes["AAPL"]
    assert set(quote) == {
        "type", "symbol", "bid_price", "bid_size", "ask_price", "ask_size", "timestamp",
    }  # fmt: skip
    assert Decimal(quote["bid_price"]) < Decimal(quote["ask_price"])
    assert isinstance(quote["bid_size"], str)
    trade = next(m for m in seen if m["type"] == "trade")
    assert isinstance(trade["price"], str) and Decimal(trade["size"]) > 0
    await communicator.disconnect()


async def test_default_stream_is_quotes_and_subscribe_unsubscribe_change_it(trader):
    communicator = stream(f"token={access_token(trader)}&symbols=AAPL")
    await communicator.connect()
    assert (await frame(communicator))[0]["streams"] == ["quotes"]

    await communicator.send_json_to({"action": "subscribe", "symbols": ["SPY"]})
    reply = await messages_until(communicator, lambda m: m["type"] == "subscription")
    assert last_of("subscription", reply)["symbols"] == ["AAPL", "SPY"]
    await communicator.send_json_to(
        {"action": "unsubscribe", "symbols": ["AAPL"], "streams": ["quotes"]}
    )
    reply = await messages_until(communicator, lambda m: m["type"] == "subscription")
    assert last_of("subscription", reply) == {
        "type": "subscription",
        "symbols": ["SPY"],
        "streams": [],
    }
    await communicator.disconnect()


async def test_bad_query_parameters_give_errors_after_the_subscription(trader, settings):
    settings.STREAM_MAX_SYMBOLS = 2
    communicator = stream(f"token={access_token(trader)}&symbols=AAPL,MSFT,SPY&streams=news")
    assert (await communicator.connect())[0]
    first = await frame(communicator)
    assert first[0] == {"type": "subscription", "symbols": [], "streams": ["quotes"]}
    assert [m["code"] for m in first[1:]] == ["bad_symbols", "bad_stream"]
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("sent", "code"),
    [
        ("hello", "bad_message"),
        ("[1, 2]", "bad_action"),
        (json.dumps({"action": "buy", "symbols": ["AAPL"]}), "bad_action"),
        (json.dumps({"action": "subscribe", "symbols": ["aapl!"]}), "bad_symbols"),
        (json.dumps({"action": "subscribe", "symbols": "AAPL"}), "bad_message"),
        (json.dumps({"action": "subscribe", "streams": ["news"]}), "bad_stream"),
        (json.dumps({"action": "subscribe"}), "bad_message"),
        (json.dumps({"action": "subscribe", "symbols": ["MSFT", "SPY"]}), "too_many_symbols"),
        (json.dumps({"action": "ping", "pad": "x" * 5000}), "frame_too_large"),
        ("[" * 2000 + "]" * 2000, "bad_message"),  # under the size cap, deeper than json reads
    ],
)
async def test_bad_client_messages_get_an_error_and_the_connection_stays_open(
    trader, settings, sent, code
):
    settings.STREAM_MAX_SYMBOLS = 2
    communicator = stream(f"token={access_token(trader)}&symbols=AAPL")
    await communicator.connect()
    await frame(communicator)
    await communicator.send_to(text_data=sent)
    error = last_of("error", await messages_until(communicator, lambda m: m["type"] == "error"))
    assert error["code"] == code and error["message"]
    await communicator.send_json_to({"action": "ping"})
    await messages_until(communicator, lambda m: m["type"] == "pong")
    # Nothing changed: still the one symbol.
    await communicator.send_json_to({"action": "subscribe", "symbols": ["MSFT"]})
    reply = await messages_until(communicator, lambda m: m["type"] == "subscription")
    assert last_of("subscription", reply)["symbols"] == ["AAPL", "MSFT"]
    await communicator.disconnect()


async def test_binary_frames_get_an_error(trader):
    communicator = stream(f"token={access_token(trader)}")
    await communicator.connect()
    await frame(communicator)
    await communicator.send_to(bytes_data=b"\x00\x01")
    assert (await frame(communicator))[-1]["code"] == "bad_message"
    await communicator.disconnect()


async def test_order_messages_reach_only_their_owner(trader, other_trader):
    alice = stream(f"token={access_token(trader)}&streams=orders")
    mallory = stream(f"token={access_token(other_trader)}&streams=orders")
    for communicator in (alice, mallory):
        await communicator.connect()
        assert (await frame(communicator))[0]["streams"] == ["orders"]

    client = await sync_to_async(client_for)(trader)
    response = await sync_to_async(client.post)(
        "/api/v1/orders/",
        {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"},
        format="json",
    )
    assert response.status_code == 201, response.content
    placed = response.json()["order"]

    seen = await messages_until(alice, lambda m: m["type"] == "order" and m["event"] == "fill")
    orders = [m for m in seen if m["type"] == "order"]
    assert {m["client_order_id"] for m in orders} == {placed["client_order_id"]}
    assert orders[-1]["status"] == "filled" and Decimal(orders[-1]["filled_qty"]) == 1

    # Up to the reply to her ping (sent after Alice's fill), Mallory saw no order.
    await mallory.send_json_to({"action": "ping"})
    seen_by_mallory = await messages_until(mallory, lambda m: m["type"] == "pong")
    assert [m for m in seen_by_mallory if m["type"] == "order"] == []
    for communicator in (alice, mallory):
        await communicator.disconnect()


async def test_a_sync_batch_of_order_changes_arrives_in_order(trader):
    """A sync publishes a batch's frames as one channel-layer message; all of them arrive."""
    from orders.events import publish_after_commit

    alice = stream(f"token={access_token(trader)}&streams=orders")
    await alice.connect()
    await frame(alice)
    batch = [
        {"type": "order", "id": n, "client_order_id": f"batch-{n}", "event": "fill"}
        for n in range(3)
    ]
    await sync_to_async(publish_after_commit)(trader.pk, batch)
    seen = await messages_until(alice, lambda m: m.get("client_order_id") == "batch-2")
    assert [m["client_order_id"] for m in seen if m["type"] == "order"] == [
        "batch-0",
        "batch-1",
        "batch-2",
    ]
    await alice.disconnect()


async def test_the_connection_closes_with_1008_when_the_token_expires(trader):
    token = AccessToken.for_user(trader)
    token.set_exp(lifetime=timedelta(seconds=1))
    communicator = stream(f"token={token}")
    assert (await communicator.connect())[0]
    await frame(communicator)
    while (output := await communicator.receive_output(timeout=3))["type"] == "websocket.send":
        pass
    assert output == {"type": "websocket.close", "code": 1008} or output["code"] == 1008


async def test_an_open_connection_counts_in_the_metrics_until_it_closes(trader):
    def open_connections() -> float:
        return REGISTRY.get_sample_value("tradedesk_stream_connections")

    before = open_connections()
    communicator = stream(f"token={access_token(trader)}&symbols=AAPL")
    assert (await communicator.connect())[0]
    await frame(communicator)  # the subscription: attached to the relay
    assert open_connections() == before + 1
    await communicator.disconnect()
    assert open_connections() == before
