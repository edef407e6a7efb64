"""The paper exchange's trade updates, as a stream: every paper account in one feed.

Each tick first lets the exchange match resting orders (its clock moves on), then delivers
the events its books recorded since the last tick, oldest first, each naming its account.
The event table is the exchange's log, so a restarted follower only needs the last id it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from channels.db import database_sync_to_async
from django.db import DatabaseError

from tradedesk.broker.base import FeedStatusHandler, OrderUpdateHandler, OrderUpdateStream

from . import exchange

log = logging.getLogger(__name__)


class SimOrderUpdateStream(OrderUpdateStream):
    def __init__(
        self,
        on_update: OrderUpdateHandler,
        on_status: FeedStatusHandler,
        *,
        interval: float = 0.5,
        after_event_id: int | None = None,
    ):
        super().__init__(on_update, on_status)
        self.interval = interval
        # Where to start: by default, now (the periodic sync covers what came before).
        self.last_event_id = after_event_id
        self._stopping = asyncio.Event()

    async def _tick(self) -> None:
        await database_sync_to_async(exchange.process_open_orders)()
        batch = await database_sync_to_async(exchange.events_after)(self.last_event_id)
        for event_id, update in batch:
            await self.on_update(update)
            self.last_event_id = event_id

    async def run(self) -> None:
        if self.last_event_id is None:
            self.last_event_id = await database_sync_to_async(exchange.latest_event_id)()
        await self.on_status("up", "paper exchange")
        healthy = True
        while not self._stopping.is_set():
            try:
                await self._tick()
                if not healthy:
                    healthy = True
                    await self.on_status("up", "paper exchange")
            except DatabaseError as error:
                log.warning("paper exchange feed: %s", error)
                if healthy:
                    healthy = False
                    await self.on_status("down", f"paper exchange: {error}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)

    async def stop(self) -> None:
        self._stopping.set()
