"""WS /alpaca/stream: Alpaca's trade_updates over the desk's own order events (thin: the
protocol is in gateway.stream, the keys in gateway.services)."""

from __future__ import annotations

import asyncio
import contextlib
import json

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from orders.events import user_group
from tradedesk.client_ip import scope_client_address

from . import services, stream

# Alpaca closes a connection that has not authenticated within this long.
AUTH_TIMEOUT_S = 10


class TradeUpdatesConsumer(AsyncWebsocketConsumer):
    api_key = None
    listening = False
    deadline: asyncio.Task | None = None

    async def connect(self) -> None:
        await self.accept()
        self.deadline = asyncio.create_task(self._close_unless_authenticated())

    async def disconnect(self, code) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        if self.api_key is not None:
            await self.channel_layer.group_discard(
                services.key_group(self.api_key), self.channel_name
            )
        if self.listening:
            await self.channel_layer.group_discard(
                user_group(self.api_key.user_id), self.channel_name
            )

    async def receive(self, text_data=None, bytes_data=None) -> None:
        try:
            message = stream.parse(text_data if text_data is not None else bytes_data)
            action = message.get("action")
            if action == "authenticate":
                await self._authenticate(message)
            elif action == "listen":
                await self._listen(message)
            else:
                raise stream.BadMessage("invalid action")
        except stream.BadMessage as bad:
            await self._send(stream.error(str(bad)))

    async def _authenticate(self, message: dict) -> None:
        key_id, secret = stream.credentials(message)
        try:
            self.api_key = await database_sync_to_async(services.authenticate_key)(
                key_id=key_id, secret=secret, address=scope_client_address(self.scope)
            )
        except services.KeyRefused:
            await self._send(stream.authorization("unauthorized", "authenticate"))
            await self.close()
            return
        self.deadline.cancel()
        await self.channel_layer.group_add(services.key_group(self.api_key), self.channel_name)
        await self._send(stream.authorization("authorized", "authenticate"))

    async def _listen(self, message: dict) -> None:
        if self.api_key is None:
            await self._send(stream.authorization("unauthorized", "listen"))
            return
        streams = stream.listen_streams(message)
        wanted = "trade_updates" in streams
        group = user_group(self.api_key.user_id)
        if wanted and not self.listening:
            await self.channel_layer.group_add(group, self.channel_name)
        elif self.listening and not wanted:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.listening = wanted
        await self._send(stream.listening(streams))

    async def order_update(self, event) -> None:
        """orders.events publishes each of the user's order changes to the user's group."""
        await self._relay([event["message"]])

    async def order_updates(self, event) -> None:
        await self._relay(event["messages"])

    async def notification_message(self, event) -> None:
        """The desk's notifications share the user's group; Alpaca's trade_updates protocol
        has no such message, so a bot never sees them."""

    async def key_revoked(self, event) -> None:
        """gateway.services.revoke_api_key: the key stopped working, and so does its stream."""
        await self._send(stream.authorization("unauthorized", "authenticate"))
        await self.close()

    async def _relay(self, frames: list[dict]) -> None:
        if not self.listening:
            return
        for frame in frames:
            update = await database_sync_to_async(stream.trade_update)(self.api_key, frame)
            if update is not None:
                await self._send(update)

    async def _send(self, message: dict) -> None:
        # Alpaca's paper stream sends its JSON in binary frames.
        await self.send(bytes_data=json.dumps(message).encode())

    async def _close_unless_authenticated(self) -> None:
        await asyncio.sleep(AUTH_TIMEOUT_S)
        with contextlib.suppress(Exception):
            await self._send(stream.authorization("unauthorized", "authenticate"))
            await self.close()
