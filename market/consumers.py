"""WS /api/v1/broker/stream: authenticate, then relay market data and the user's orders.

Thin: market.services parses and authenticates, market.relay does the fan-out.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from accounts.access import stream_address_allowed
from orders.events import user_group

from . import services
from .daphne_socket import close_with_code, watch_send_buffer
from .messages import error_message
from .relay import Connection, process_stream

CLOSE_POLICY_VIOLATION = 1008


class MarketStreamConsumer(AsyncWebsocketConsumer):
    connection: Connection | None = None
    expiry: asyncio.Task | None = None
    in_order_group = False

    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin1"))
        authenticated = await database_sync_to_async(services.stream_user)(
            query.get("token", [""])[0]
        )
        # The decision is made before accepting; accepting first lets a client see code 1008
        # (a refused handshake reaches browsers as a bare 1006). Nothing else is sent.
        await self.accept()
        if authenticated is None or not stream_address_allowed(authenticated[0], self.scope):
            await self._close(CLOSE_POLICY_VIOLATION)
            return
        self.user, expires_at = authenticated
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

        self.relay = process_stream.relay_for_this_loop()
        self.connection = Connection.from_settings(
            self._send_frame,
            self._close,
            streams=set(),
            send_buffer=watch_send_buffer(self.base_send),
        )
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

    async def receive(self, text_data=None, bytes_data=None) -> None:
        connection = self.connection
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

    async def order_update(self, event) -> None:
        """orders.events publishes the user's own order changes to the user's group."""
        if self.connection is not None:
            self.connection.push(event["message"])

    async def order_updates(self, event) -> None:
        """A sync batch's order changes in one channel-layer message, in order."""
        if self.connection is not None:
            for message in event["messages"]:
                self.connection.push(message)

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
        """Every close: daphne cannot send 1008 or 1013 through ASGI (market.daphne_socket)."""
        with contextlib.suppress(Exception):  # the client may already be gone
            if not close_with_code(self.base_send, code):
                await self.close(code=code)

    async def _close_at(self, expires_at: datetime) -> None:
        await asyncio.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()))
        await self._close(CLOSE_POLICY_VIOLATION)


def _list(query: dict[str, list[str]], name: str) -> list[str]:
    return [part for value in query.get(name, []) for part in value.split(",") if part.strip()]
