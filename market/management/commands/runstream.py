"""`manage.py runstream`: the stream process, exactly one per deployment (Redis lock).

It holds the market-data hub (the one upstream connection) and follows every linked
account's order updates into the database (orders.sync.live). Without REDIS_URL (the embedded
run) the web process holds the hub itself, and this process follows order updates only.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from market.stream.hub import Hub, upstream_factory
from market.stream.transport import HUB_LOCK_KEY, RedisTransport
from orders.sync.live import follow_order_updates

logger = logging.getLogger(__name__)
LOCK_TTL_S = 15
LOCK_RENEW_S = 5
STOP_S = 5


class Command(BaseCommand):
    help = "Run the stream process: the market-data hub and the live order updates."

    def add_arguments(self, parser):
        parser.add_argument(
            "--quotes-per-second",
            type=float,
            help="paper exchange only: send quotes at this rate (benchmarks; default "
            "SIM_STREAM_QUOTES_PER_SECOND)",
        )
        parser.add_argument(
            "--trades-per-second",
            type=float,
            help="paper exchange only: send trades at this rate (benchmarks; default "
            "SIM_STREAM_TRADES_PER_SECOND)",
        )

    def handle(self, *args, **options):
        gc.freeze()  # the loaded app lives as long as the process (see tradedesk/asgi.py)
        factory = upstream_factory(
            quotes_per_second=options["quotes_per_second"],
            trades_per_second=options["trades_per_second"],
        )
        run = self._run(factory) if settings.REDIS_URL else self._follow_orders_only()
        with contextlib.suppress(asyncio.CancelledError):
            asyncio.run(run)

    def _on_signals_cancel(self) -> None:
        main = asyncio.current_task()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, main.cancel)

    async def _follow_orders_only(self) -> None:
        self._on_signals_cancel()
        self.stdout.write("No REDIS_URL: following order updates (the web process runs the hub).")
        self.stdout.flush()
        stop = asyncio.Event()
        try:
            await follow_order_updates(stop)
        finally:
            stop.set()

    async def _run(self, factory) -> None:
        # SIGTERM/SIGINT unwind through the finally blocks, so the lock is released at once.
        self._on_signals_cancel()
        transport = RedisTransport(settings.REDIS_URL)
        lock = transport.redis.lock(HUB_LOCK_KEY, timeout=LOCK_TTL_S, sleep=1)
        try:
            if not await lock.acquire(blocking=False):
                self.stdout.write("Another hub holds the lock; waiting for it.", ending="\n")
                await lock.acquire(blocking=True)
            self.stdout.write("Market-data hub running.", ending="\n")
            self.stdout.flush()
            hub_runner = Hub(transport, factory)
            hub = asyncio.create_task(hub_runner.run())
            # Only the lock holder follows order updates: one trade_updates stream per account.
            orders_stop = asyncio.Event()
            orders = asyncio.create_task(follow_order_updates(orders_stop))
            try:
                while not hub.done():
                    await asyncio.wait([hub], timeout=LOCK_RENEW_S)
                    if not hub.done():
                        # Losing the lock means another hub may start: stop rather than double up.
                        await lock.reacquire()
                await hub
            finally:
                orders_stop.set()
                await hub_runner.stop()
                await asyncio.wait([hub], timeout=STOP_S)
                hub.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await hub
                with contextlib.suppress(asyncio.CancelledError):
                    await orders
        finally:
            with contextlib.suppress(Exception):
                await lock.release()
            await transport.close()
