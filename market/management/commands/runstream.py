"""`manage.py runstream`: the market-data hub, exactly one per deployment (Redis lock)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from market.hub import Hub, upstream_factory
from market.transport import HUB_LOCK_KEY, RedisTransport

logger = logging.getLogger(__name__)
LOCK_TTL_S = 15
LOCK_RENEW_S = 5


class Command(BaseCommand):
    help = "Run the market-data hub: the one upstream connection, published to every web process."

    def add_arguments(self, parser):
        parser.add_argument(
            "--quotes-per-second",
            type=float,
            default=0,
            help="paper exchange only: send quotes at this rate (benchmarks)",
        )
        parser.add_argument(
            "--trades-per-second",
            type=float,
            default=0,
            help="paper exchange only: send trades at this rate (benchmarks)",
        )

    def handle(self, *args, **options):
        if not settings.REDIS_URL:
            raise CommandError(
                "runstream needs REDIS_URL; without Redis the web process runs the hub itself."
            )
        gc.freeze()  # the loaded app lives as long as the process (see tradedesk/asgi.py)
        factory = upstream_factory(
            quotes_per_second=options["quotes_per_second"],
            trades_per_second=options["trades_per_second"],
        )
        with contextlib.suppress(asyncio.CancelledError):
            asyncio.run(self._run(factory))

    async def _run(self, factory) -> None:
        # SIGTERM/SIGINT unwind through the finally blocks, so the lock is released at once.
        main = asyncio.current_task()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, main.cancel)
        transport = RedisTransport(settings.REDIS_URL)
        lock = transport.redis.lock(HUB_LOCK_KEY, timeout=LOCK_TTL_S, sleep=1)
        try:
            if not await lock.acquire(blocking=False):
                self.stdout.write("Another hub holds the lock; waiting for it.", ending="\n")
                await lock.acquire(blocking=True)
            self.stdout.write("Market-data hub running.", ending="\n")
            self.stdout.flush()
            hub = asyncio.create_task(Hub(transport, factory).run())
            try:
                while not hub.done():
                    await asyncio.wait([hub], timeout=LOCK_RENEW_S)
                    if not hub.done():
                        # Losing the lock means another hub may start: stop rather than double up.
                        await lock.reacquire()
                await hub
            finally:
                hub.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await hub
        finally:
            with contextlib.suppress(Exception):
                await lock.release()
            await transport.close()
