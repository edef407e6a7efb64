"""WS /api/v1/broker/stream: authenticate, then relay market data and the user's orders.

Thin: market.stream.services parses, market.stream.relay does the fan-out.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import caches

from accounts.access import stream_address_allowed
from accounts.services import still_unrevoked, stream_token_user
from orders.events import run_from_sync, user_group
from tradedesk import ratelimit

from . import services
from .daphne_socket import close_with_code, frame_writer, watch_send_buffer
from .messages import dumps, error_message, frame
from .relay import Connection, process_stream

CLOSE_POLICY_VIOLATION = 1008


def access_group(user_id: int) -> str:
    """Every stream connection of a user, to close them all when the user's access is revoked."""
    return f"stream.access.{user_id}"


def close_user_streams(sender=None, *, user_id: int, **kwargs) -> None:
    """accounts.services.sessions_revoked: close the user's connections, in every process."""

    async def send() -> None:
        layer = get_channel_layer()
        if layer is not None:
            await layer.group_send(access_group(user_id), {"type": "access.revoked"})

    run_from_sync(send)


class MarketStreamConsumer(AsyncWebsocketConsumer):
    connection: Connection | None = None
    expiry: asyncio.Task | None = None
    in_order_group = False
    in_access_group = False
    lease: tuple[int, str] | None = None
    refused = False
    _refusal: asyncio.Task | None = None  # a refusal started from a ping (sync) callback

    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin1"))
        authenticated = await database_sync_to_async(stream_token_user)(query.get("token", [""])[0])
        # The decision is made before accepting; accepting first lets a client see code 1008
        # (a refused handshake reaches browsers as a bare 1006). Nothing else is sent.
        await self.accept()
        # At once, before anything awaits: a client's first pings may follow the handshake in
        # the same read, and autobahn would answer them uncounted.
        send_buffer = watch_send_buffer(self.base_send)
        if send_buffer is not None:
            send_buffer.on_ping = self._ping_received
        if authenticated is None or not stream_address_allowed(authenticated[0], self.scope):
            await self._close(CLOSE_POLICY_VIOLATION)
            return
        self.user, expires_at = authenticated
        self.relay = process_stream.relay_for_this_loop()
        limit = settings.STREAM_MAX_CONNECTIONS_PER_USER
        lease = (self.user.pk, self.channel_name) if limit else None  # 0: no cap
        if lease is not None:
            if not await self.relay.transport.claim_connection(*lease, limit):
                await self._refuse(
                    "too_many_connections", f"At most {limit} open stream connections per user."
                )
                return
            self.lease = lease
        await self.channel_layer.group_add(access_group(self.user.pk), self.channel_name)
        self.in_access_group = True
        if not await database_sync_to_async(still_unrevoked)(self.user):
            await self._refuse("access_revoked", "This user's sessions were revoked.")
            return
        self.expiry = asyncio.create_task(self._close_at(expires_at))

        errors = []
        symbols = streams = frozenset()
        for name, parse in (
            ("symbols", services.parse_stream_symbols),
            ("streams", services.parse_streams),
        ):
            try:
                parsed = parse(_list(query, name))
            except services.StreamRequestError as error:
                errors.append(error_message(error.code, error.message))
                continue
            if name == "symbols":
                symbols = parsed
            else:
                streams = parsed
        streams = streams or frozenset(services.DEFAULT_STREAMS)

        self.connection = Connection.from_settings(
            self._send_frame,
            self._close,
            streams=set(),
            send_buffer=send_buffer,
            write=frame_writer(self.base_send),
        )
        self.connection.lease = lease
        await self._apply(symbols, streams)
        self._push_subscription(symbols)
        for error in errors:
            self.connection.push(error)
        self.relay.attach(self.connection)
        self.connection.start()

    async def disconnect(self, code) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
        if self.connection is not None:
            self.relay.detach(self.connection)
            await self.connection.stop()
            if self.in_order_group:
                await self.channel_layer.group_discard(user_group(self.user.pk), self.channel_name)
        if self.in_access_group:
            await self.channel_layer.group_discard(access_group(self.user.pk), self.channel_name)
        if self.lease is not None:
            await self.relay.transport.release_connection(*self.lease)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        connection = self.connection
        if connection is None or self.refused:
            return
        if not self._within_message_rate():
            await self._refuse_over_rate()
            return
        try:
            action = services.parse_client_action(text_data)
            if action.action == "ping":
                connection.push({"type": "pong"})
                return
            symbols, streams = services.subscription_after(
                action, frozenset(connection.symbols), frozenset(connection.streams)
            )
        except services.StreamRequestError as error:
            connection.push(error_message(error.code, error.message))
            return
        await self._apply(symbols, streams)
        self._push_subscription(symbols)

    def _within_message_rate(self) -> bool:
        """Client messages and WebSocket pings, counted per connection (in this process)."""
        try:
            ratelimit.hit(
                "stream-messages",
                self.channel_name,
                f"{settings.STREAM_CLIENT_MESSAGES_PER_SECOND}/s",
                store=caches["local"],
            )
        except ratelimit.RateLimitExceeded:
            return False
        return True

    async def _refuse_over_rate(self) -> None:
        await self._refuse(
            "rate_limited",
            f"At most {settings.STREAM_CLIENT_MESSAGES_PER_SECOND} messages a second "
            "per connection.",
        )

    def _ping_received(self) -> None:
        """A WebSocket ping (market.stream.daphne_socket, on the event loop's thread)."""
        if self.refused:
            return
        if not self._within_message_rate():
            # Refused from now on: the pings that follow in the same read must not each
            # start a refusal of their own before this one runs.
            self.refused = True
            self._refusal = asyncio.get_running_loop().create_task(self._refuse_over_rate())
            return
        if self.connection is not None:  # None while the connection is being set up
            self.connection.count_ping()

    async def access_revoked(self, event) -> None:
        """accounts revoked the user's sessions (a password change, an operator, deactivation)."""
        await self._refuse("access_revoked", "This user's sessions were revoked; log in again.")

    async def _refuse(self, code: str, message: str) -> None:
        """An `error` frame saying why, then 1008; nothing else is sent or read after it."""
        self.refused = True
        if self.connection is not None:
            await self.connection.stop()
        with contextlib.suppress(Exception):  # the client may already be gone
            await self._send_frame(frame([dumps(error_message(code, message))]))
        await self._close(CLOSE_POLICY_VIOLATION)

    async def order_update(self, event) -> None:
        """orders.events publishes the user's own order changes to the user's group."""
        if self.connection is not None:
            self.connection.push(event["message"])

    async def order_updates(self, event) -> None:
        """A sync batch's order changes in one channel-layer message, in order."""
        if self.connection is not None:
            for message in event["messages"]:
                self.connection.push(message)

    # The user's notifications (an app above market publishes them to the user's group, this
    # app imports none): frames forwarded as they come, like a batch of order changes.
    notification_message = order_updates

    async def _apply(self, symbols: frozenset[str], streams: frozenset[str]) -> None:
        connection = self.connection
        group = user_group(self.user.pk)
        if ("orders" in streams) != self.in_order_group:
            if self.in_order_group:
                await self.channel_layer.group_discard(group, self.channel_name)
            else:
                await self.channel_layer.group_add(group, self.channel_name)
            self.in_order_group = not self.in_order_group
        connection.streams = set(streams)
        self.relay.unsubscribe(connection, connection.symbols - symbols)
        self.relay.subscribe(connection, symbols - connection.symbols)

    def _push_subscription(self, symbols) -> None:
        self.connection.push(
            {
                "type": "subscription",
                "symbols": sorted(symbols),
                "streams": sorted(self.connection.streams),
            }
        )
        for refusal in self.relay.refusals(set(symbols)):  # symbols the feed will not serve
            self.connection.push_text(refusal)

    async def _send_frame(self, text: str) -> None:
        await self.send(text_data=text)

    async def _close(self, code: int) -> None:
        """Every close: daphne cannot send 1008 or 1013 through ASGI (see daphne_socket)."""
        with contextlib.suppress(Exception):  # the client may already be gone
            if not close_with_code(self.base_send, code):
                await self.close(code=code)

    async def _close_at(self, expires_at: datetime) -> None:
        await asyncio.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()))
        await self._close(CLOSE_POLICY_VIOLATION)


def _list(query: dict[str, list[str]], name: str) -> list[str]:
    return [part for value in query.get(name, []) for part in value.split(",") if part.strip()]
