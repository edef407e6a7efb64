"""The stream's doors: the stream-only token, revocation closing open connections at once,
the per-user connection cap and the per-connection message rate."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts import services
from accounts.models import User
from market.tests.test_stream_consumer import access_token, assert_refused_with_1008, frame, stream

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def embedded(settings):
    settings.REDIS_URL = ""


async def opened(query: str) -> WebsocketCommunicator:
    communicator = stream(query)
    connected, _ = await communicator.connect()
    assert connected
    assert (await frame(communicator))[0]["type"] == "subscription"
    return communicator


async def refused_with(communicator: WebsocketCommunicator, code: str, timeout: float = 1):
    """The connection's last frame is an `error` with `code`, then a close with 1008."""
    last_error = None
    while True:
        output = await communicator.receive_output(timeout)
        if output["type"] == "websocket.close":
            assert output["code"] == 1008
            assert last_error is not None, "closed without saying why"
            return last_error
        messages = json.loads(output["text"])
        errors = [m for m in messages if m["type"] == "error"]
        if errors:
            last_error = errors[-1]
            assert last_error["code"] == code, last_error


def page_stream_token(user) -> str:
    """What the pages fetch: POST /accounts/stream-token/ with the session."""
    browser = Client()
    browser.force_login(user)
    return browser.post("/accounts/stream-token/").json()["access"]


async def test_the_stream_token_opens_the_stream_once(trader):
    token = await sync_to_async(page_stream_token)(trader)
    communicator = await opened(f"token={token}")
    await communicator.disconnect()
    await assert_refused_with_1008(stream(f"token={token}"))  # replayed


async def test_an_api_clients_access_token_still_opens_the_stream(trader):
    communicator = await opened(f"token={access_token(trader)}")
    await communicator.disconnect()


@pytest.mark.parametrize(
    "revoke",
    [
        pytest.param(lambda user: services.revoke_sessions(user), id="operator"),
        pytest.param(
            lambda user: (user.set_password("n3w-Passw0rd!x"), user.save()), id="password-change"
        ),
        pytest.param(
            lambda user: (setattr(user, "is_active", False), user.save()), id="deactivation"
        ),
    ],
)
async def test_revocation_closes_every_open_stream_of_the_user_within_a_second(make_user, revoke):
    user = await sync_to_async(make_user)("victim")
    bystander = await sync_to_async(make_user)("bystander")
    victims = [
        await opened(f"token={access_token(user)}"),
        await opened(f"token={await sync_to_async(page_stream_token)(user)}&streams=orders"),
    ]
    other = await opened(f"token={access_token(bystander)}")

    started = time.monotonic()
    await sync_to_async(revoke)(await sync_to_async(User.objects.get)(pk=user.pk))
    for communicator in victims:
        assert (await refused_with(communicator, "access_revoked"))["message"]
    assert time.monotonic() - started < 1

    await other.send_json_to({"action": "ping"})
    assert any(m["type"] == "pong" for m in await frame(other))
    await other.disconnect()


async def test_a_token_from_before_the_revocation_cannot_open_a_stream(trader):
    token = access_token(trader)
    await sync_to_async(services.revoke_sessions)(trader)
    await assert_refused_with_1008(stream(f"token={token}"))


async def test_the_connection_cap_per_user(trader, other_trader, settings):
    settings.STREAM_MAX_CONNECTIONS_PER_USER = 3
    token = access_token(trader)
    open_ones = [await opened(f"token={token}") for _ in range(3)]

    over = stream(f"token={token}")
    assert (await over.connect())[0]
    error = await refused_with(over, "too_many_connections")
    assert "3" in error["message"]
    # Another user is not affected; a closed connection frees its place.
    other = await opened(f"token={access_token(other_trader)}")
    await open_ones.pop().disconnect()
    await asyncio.sleep(0.05)
    open_ones.append(await opened(f"token={token}"))
    for communicator in [*open_ones, other]:
        await communicator.disconnect()


async def pinging(trader, settings, count: int) -> WebsocketCommunicator:
    """A connection allowed 5 messages a second that has just sent `count` pings."""
    settings.STREAM_CLIENT_MESSAGES_PER_SECOND = 5
    communicator = await opened(f"token={access_token(trader)}")
    for _ in range(count):
        await communicator.send_json_to({"action": "ping"})
    return communicator


async def test_a_client_over_the_message_rate_gets_an_error_then_1008(trader, settings):
    communicator = await pinging(trader, settings, 50)
    error = await refused_with(communicator, "rate_limited")
    assert "5 messages a second" in error["message"]
    await communicator.wait()


async def test_a_client_within_the_message_rate_stays(trader, settings):
    communicator = await pinging(trader, settings, 4)
    pongs = 0
    while pongs < 4:
        pongs += sum(m["type"] == "pong" for m in await frame(communicator))
    await communicator.disconnect()


@pytest.mark.services
async def test_simultaneous_claims_over_redis_let_exactly_the_cap_through():
    """Many connections of one user arriving at once on several processes (clients of their
    own here): the claim is one atomic step in Redis, so no more than the cap get in."""
    from conftest import require_service
    from market.transport import RedisTransport

    redis_url = os.environ.get("REDIS_URL", "")  # this module's tests run embedded otherwise
    require_service("Redis", bool(redis_url))
    transports = [RedisTransport(redis_url) for _ in range(5)]
    user_id = 10**9 + int(time.time())  # no other test's user
    try:
        claims = await asyncio.gather(
            *(
                transports[n % 5].claim_connection(user_id, f"process-{n % 5}:{n}", 10)
                for n in range(60)
            )
        )
        assert sum(claims) == 10
        granted = [f"process-{n % 5}:{n}" for n, ok in enumerate(claims) if ok]
        await transports[0].release_connection(user_id, granted[0])
        assert await transports[1].claim_connection(user_id, "late", 10)
        assert not await transports[2].claim_connection(user_id, "later", 10)
        # A relay's heartbeat renews its leases; a lease nobody renews lapses (a dead process).
        key = f"tradedesk:stream:connections:{user_id}"
        await transports[0].redis.zadd(key, {"late": time.time() - 1})
        assert await transports[2].claim_connection(user_id, "after-a-crash", 10)
        await transports[0].renew_connections([(user_id, "after-a-crash")])
        assert await transports[0].redis.zscore(key, "after-a-crash") > time.time() + 10
    finally:
        await transports[0].redis.delete(f"tradedesk:stream:connections:{user_id}")
        for transport in transports:
            await transport.close()
