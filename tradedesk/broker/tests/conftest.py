"""Fixtures for the broker tests: loopback Alpaca fakes and an AlpacaBroker pointed at them.

The broker tests need Django settings and the cache, never a database. When the project's
pytest.ini names DJANGO_SETTINGS_MODULE, pytest-django has configured the real settings by
now; run on their own (say, before the apps exist), they get the minimal settings below.
"""

from __future__ import annotations

from collections.abc import Iterator

import django
import pytest
from django.conf import settings as django_settings

if not django_settings.configured:
    django_settings.configure(
        USE_TZ=True,
        TIME_ZONE="UTC",
        INSTALLED_APPS=[],
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        ALPACA_TRADING_URL="",
        ALPACA_DATA_URL="",
        ALPACA_DATA_STREAM_URL="",
        ALPACA_TRADING_STREAM_URL="",
        ALPACA_DATA_FEED="iex",
        ALPACA_TIMEOUT_SECONDS=10.0,
        ALPACA_REQUESTS_PER_MINUTE=190,
    )
    django.setup()

from django.core.cache import cache

from tradedesk.broker import BrokerCredentials
from tradedesk.broker.alpaca import AlpacaBroker

from .alpaca_fakes import (
    KEY_ID,
    SECRET,
    FakeAlpacaREST,
    FakeMarketDataStream,
    FakeTradingStream,
)


@pytest.fixture
def alpaca_credentials() -> BrokerCredentials:
    return BrokerCredentials(provider="alpaca", paper=True, key_id=KEY_ID, secret=SECRET)


@pytest.fixture
def fake_alpaca() -> Iterator[FakeAlpacaREST]:
    fake = FakeAlpacaREST().start()
    yield fake
    fake.stop()


@pytest.fixture
def alpaca_settings(settings, fake_alpaca: FakeAlpacaREST):
    """Settings pointing alpaca-py at the fakes; pacing out of the way, a short timeout."""
    settings.ALPACA_TRADING_URL = fake_alpaca.url
    settings.ALPACA_DATA_URL = fake_alpaca.url
    settings.ALPACA_TIMEOUT_SECONDS = 2.0
    settings.ALPACA_REQUESTS_PER_MINUTE = 1_000_000
    settings.ALPACA_DATA_FEED = "iex"
    cache.clear()  # the pacing counters of earlier tests share the key id
    return settings


@pytest.fixture
def broker(alpaca_settings, alpaca_credentials: BrokerCredentials) -> AlpacaBroker:
    return AlpacaBroker(alpaca_credentials)


@pytest.fixture
def fake_md_stream(settings) -> Iterator[FakeMarketDataStream]:
    fake = FakeMarketDataStream().start()
    settings.ALPACA_DATA_STREAM_URL = fake.url
    yield fake
    fake.stop()


@pytest.fixture
def fake_trading_stream(settings) -> Iterator[FakeTradingStream]:
    fake = FakeTradingStream().start()
    settings.ALPACA_TRADING_STREAM_URL = fake.url
    yield fake
    fake.stop()
