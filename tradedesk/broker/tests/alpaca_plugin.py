"""Pytest fixtures for Alpaca: loopback fakes and an AlpacaBroker pointed at them.

Registered for the whole suite from the root conftest, so desk-level tests (orders,
accounts) can link Alpaca accounts against the same fakes the adapter tests use.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache

from tradedesk.broker import BrokerCredentials
from tradedesk.broker.alpaca import AlpacaBroker
from tradedesk.broker.tests.alpaca_fakes import (
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
