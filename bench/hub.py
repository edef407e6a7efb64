"""The hub's CPU per upstream message, the paper feed's own cost taken out.

    REDIS_URL=redis://127.0.0.1:6379/0 python bench/hub.py [--seconds 10] [--runs 3]
        [--quotes 1000] [--trades 100] [--symbols 50] [--profile out.prof]

Runs in this process, one after the other, `--runs` times each: the paper feed at fixed rates
with a handler that does nothing (the feed's own cost: making quotes and trades), then the
market-data hub on that feed publishing to Redis (feed + hub). The hub's cost per upstream
message is the difference, divided by the messages; both are process CPU (time.process_time),
so other work on the machine only slows them, it is not counted. `--profile` writes a cProfile
of one more hub run (feed included).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


async def run_feed(args, symbols: set[str]) -> tuple[float, int]:
    """The paper feed alone: (CPU seconds, messages)."""
    from tradedesk.broker.sim.stream import SimMarketDataStream

    count = 0

    async def on_data(item) -> None:
        nonlocal count
        count += 1

    async def on_status(state, detail) -> None:
        return None

    feed = SimMarketDataStream(
        on_data, on_status, quotes_per_second=args.quotes, trades_per_second=args.trades
    )
    await feed.set_symbols(symbols)
    return await _timed(feed.run(), feed.stop, args.seconds, lambda: count)


async def run_hub(args, symbols: set[str], redis_url: str) -> tuple[float, int]:
    """The hub on the paper feed, publishing to Redis: (CPU seconds, messages)."""
    from market.stream.hub import Hub, upstream_factory
    from market.stream.transport import RedisTransport

    transport = RedisTransport(redis_url)
    await transport.set_interest("bench-hub", symbols)
    factory = upstream_factory(quotes_per_second=args.quotes, trades_per_second=args.trades)
    count = 0
    hub = Hub(transport, factory)
    publish = transport.publish

    async def counting_publish(payload: str) -> None:
        nonlocal count
        count += payload.count("\n") + 1
        await publish(payload)

    transport.publish = counting_publish
    try:
        return await _timed(hub.run(), hub.stop, args.seconds, lambda: count)
    finally:
        await transport.drop_interest("bench-hub")
        await transport.close()


async def _timed(running, stop, seconds: float, counted) -> tuple[float, int]:
    task = asyncio.ensure_future(running)
    await asyncio.sleep(1.0)  # subscribed, warmed up
    cpu, count = time.process_time(), counted()
    await asyncio.sleep(seconds)
    cpu, count = time.process_time() - cpu, counted() - count
    await stop()
    await task
    return cpu, count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quotes", type=float, default=1000)
    parser.add_argument("--trades", type=float, default=100)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--profile", help="write a cProfile of one more hub run here")
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        sys.exit("Set REDIS_URL: the hub publishes to Redis.")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradedesk.settings")
    os.environ["MARKET_DATA_PROVIDER"] = "sim"
    import django

    django.setup()
    from tradedesk.broker.sim.universe import REFERENCE_PRICES

    symbols = set(sorted(REFERENCE_PRICES)[: args.symbols])
    feed, hub = [], []
    for _ in range(args.runs):
        cpu, count = asyncio.run(run_feed(args, symbols))
        feed.append(1e6 * cpu / count)
        cpu, count = asyncio.run(run_hub(args, symbols, redis_url))
        hub.append(1e6 * cpu / count)
        print(
            f"feed {feed[-1]:5.1f} µs/message  feed + hub {hub[-1]:5.1f} µs/message  "
            f"({count / args.seconds:.0f} messages/s)",
            flush=True,
        )
    feed_us, total_us = statistics.median(feed), statistics.median(hub)
    print(
        f"median of {args.runs}: feed {feed_us:.1f} µs/message, hub "
        f"{total_us - feed_us:.1f} µs/message (feed + hub {total_us:.1f})",
        flush=True,
    )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        asyncio.run(run_hub(args, symbols, redis_url))
        profiler.disable()
        profiler.dump_stats(args.profile)


if __name__ == "__main__":
    main()
