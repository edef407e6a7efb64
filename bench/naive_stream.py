"""The naive fan-out, for bench/stream.py only: a plain Channels consumer per client, fed by
one `group_send` per upstream message to the symbol's group — one channel-layer message per
consumer per message. Served by daphne: `daphne bench.naive_stream:application`.
"""

from __future__ import annotations

import asyncio
import os
from urllib.parse import parse_qs

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradedesk.settings")
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402

from bench.stream import keep_interest  # noqa: E402
from market.stream.transport import RedisTransport, open_batch  # noqa: E402

feeder: asyncio.Task | None = None
wanted: set[str] = set()


async def feed_groups() -> None:
    """Every hub message, group_send to the symbol's group."""
    layer = get_channel_layer()
    transport = RedisTransport(settings.REDIS_URL)
    asyncio.get_running_loop().create_task(keep_interest(transport, "bench-naive", wanted))
    async for payload in transport.messages():
        if payload:
            for _kind, symbol, body in open_batch(payload):
                await layer.group_send(f"naive.{symbol}", {"type": "market", "text": f"[{body}]"})


class NaiveConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        global feeder
        query = parse_qs(self.scope["query_string"].decode())
        for symbol in query["symbols"][0].split(","):
            wanted.add(symbol)
            await self.channel_layer.group_add(f"naive.{symbol}", self.channel_name)
        await self.accept()
        if feeder is None:
            feeder = asyncio.get_running_loop().create_task(feed_groups())

    async def market(self, event) -> None:
        await self.send(text_data=event["text"])


application = ProtocolTypeRouter({"websocket": URLRouter([path("naive", NaiveConsumer.as_asgi())])})
