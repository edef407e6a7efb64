"""The paper exchange's simulated market: a pure, deterministic function of (seed, symbol, time)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from tradedesk.broker.sim import market
from tradedesk.broker.sim.universe import ASSETS, REFERENCE_PRICES

AT = datetime(2026, 11, 25, 15, 30, 12, 250_000, tzinfo=UTC)
REQUIRED = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "SPY", "QQQ"]


def quote_fields(quote) -> tuple:
    return (quote.bid_price, quote.ask_price, quote.bid_size, quote.ask_size, quote.timestamp)


def test_the_same_instant_gives_the_same_quote():
    first = market.quote("AAPL", AT)
    assert quote_fields(market.quote("AAPL", AT)) == quote_fields(first)
    # Quotes change on the second: any instant inside that second sees the same one.
    assert quote_fields(market.quote("AAPL", AT.replace(microsecond=999_999))) == quote_fields(
        first
    )
    assert first.timestamp == AT.replace(microsecond=0)


def test_prices_move_over_time():
    prices = {market.quote("AAPL", AT + timedelta(minutes=m)).ask_price for m in range(0, 60, 5)}
    assert len(prices) > 1


def test_different_seeds_give_different_markets(settings):
    settings.TRADEDESK_SIM_SEED = 1
    seed_one = [market.quote(symbol, AT).ask_price for symbol in REQUIRED]
    settings.TRADEDESK_SIM_SEED = 2
    seed_two = [market.quote(symbol, AT).ask_price for symbol in REQUIRED]
    settings.TRADEDESK_SIM_SEED = 1
    assert seed_one != seed_two
    assert seed_one == [market.quote(symbol, AT).ask_price for symbol in REQUIRED]


def test_trades_follow_the_seed_and_the_second(settings):
    """A second's trade is worked out once (cached): another seed or second is another one."""
    settings.TRADEDESK_SIM_SEED = 1
    seed_one = [market.trade(symbol, AT).price for symbol in REQUIRED]
    settings.TRADEDESK_SIM_SEED = 2
    assert [market.trade(symbol, AT).price for symbol in REQUIRED] != seed_one
    assert market.trade("MSFT", AT.replace(microsecond=999_999)) == market.trade("MSFT", AT)
    next_second = AT.replace(microsecond=0) + timedelta(seconds=1)
    assert market.trade("MSFT", next_second).timestamp == next_second


def test_another_process_computes_the_identical_quote_trade_and_bar():
    script = f"""
import json, django
django.setup()
from datetime import datetime
from tradedesk.broker.sim import market
at = datetime.fromisoformat({AT.isoformat()!r})
q, t = market.quote("NVDA", at), market.trade("NVDA", at)
b = market.bar("NVDA", at.replace(second=0, microsecond=0))
print(json.dumps([str(v) for v in (q.bid_price, q.ask_price, q.bid_size, q.ask_size,
                                   t.price, t.size, b.open, b.high, b.low, b.close, b.volume)]))
"""
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "tradedesk.settings",
        "TRADEDESK_SIM_SEED": str(django_settings.TRADEDESK_SIM_SEED),
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(django_settings.BASE_DIR),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    theirs = json.loads(result.stdout.strip().splitlines()[-1])
    q, t = market.quote("NVDA", AT), market.trade("NVDA", AT)
    b = market.bar("NVDA", AT.replace(second=0, microsecond=0))
    quoted = (q.bid_price, q.ask_price, q.bid_size, q.ask_size)
    ours = [str(v) for v in (*quoted, t.price, t.size, b.open, b.high, b.low, b.close, b.volume)]
    assert theirs == ours


def test_the_universe_has_about_fifty_real_tickers_including_the_majors():
    assert 45 <= len(ASSETS) <= 60
    assert set(REQUIRED) <= set(ASSETS)
    assert all(ASSETS[symbol].tradable for symbol in REQUIRED)
    assert ASSETS["AAPL"].name == "Apple Inc."


def test_every_quote_has_bid_below_ask_and_positive_sizes_at_plausible_prices():
    for symbol, reference in REFERENCE_PRICES.items():
        for hours in range(0, 24 * 14, 7):
            quote = market.quote(symbol, AT + timedelta(hours=hours, seconds=hours * 13))
            assert Decimal("0") < quote.bid_price < quote.ask_price, (symbol, quote)
            assert quote.bid_size > 0 and quote.ask_size > 0
            assert isinstance(quote.bid_price, Decimal) and isinstance(quote.bid_size, Decimal)
            # Within a plausible band of the reference price over two weeks.
            assert reference / 2 < quote.ask_price < reference * 2, (symbol, quote)
            spread = (quote.ask_price - quote.bid_price) / quote.bid_price
            assert spread < Decimal("0.01"), (symbol, quote)


def test_the_last_trade_is_on_the_bid_or_the_ask():
    for seconds in range(50):
        at = AT + timedelta(seconds=seconds)
        quote, trade = market.quote("MSFT", at), market.trade("MSFT", at)
        assert trade.price in (quote.bid_price, quote.ask_price)
        assert trade.size > 0
        assert trade.timestamp == quote.timestamp


@pytest.mark.parametrize(
    ("timeframe", "span", "step"),
    [
        ("1Min", timedelta(hours=3), 60),
        ("1Hour", timedelta(days=5), 3600),
        ("1Day", timedelta(days=40), 86400),
    ],
)
def test_bars_are_aligned_and_ohlc_consistent(timeframe, span, step):
    starts = market.bar_starts(timeframe, AT, AT + span)
    assert starts, timeframe
    assert all(int(start.timestamp()) % step == 0 for start in starts)
    assert all(b - a == timedelta(seconds=step) for a, b in itertools.pairwise(starts))
    assert starts[0] >= AT and starts[-1] < AT + span
    for symbol in ("AAPL", "SPY", "SIRI"):
        for start in starts:
            bar = market.bar(symbol, start, timeframe)
            assert bar.timestamp == start
            assert bar.high >= max(bar.open, bar.close), bar
            assert bar.low <= min(bar.open, bar.close), bar
            assert bar.low > 0 and bar.volume > 0
