"""The broker layer: one interface, plain data classes, the paper exchange and Alpaca.

This module is the factory, the one place that decides every provider question: the broker
for an account, the deployment's market-data source (REST and stream), the order-update
streams, opening a paper account, provider-wide periodic work. Apps ask it and never import
`sim` or `alpaca` submodules or compare provider names (tradedesk/tests/test_provider_boundary.py
keeps it so). Nothing outside this package imports alpaca-py.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from .base import (
    Broker,
    FeedStatusHandler,
    MarketDataHandler,
    MarketDataStream,
    OrderUpdateHandler,
    OrderUpdateStream,
    SymbolsRefusedHandler,
)
from .types import KeyProblem

SIM, ALPACA = "sim", "alpaca"
# Providers whose accounts each have an order-update stream of their own; the paper
# exchange's updates come in one feed for every account (paper_order_update_stream).
_OWN_ORDER_UPDATE_STREAMS = frozenset({ALPACA})


@dataclass(frozen=True)
class BrokerCredentials:
    provider: str  # "sim" | "alpaca"
    paper: bool
    key_id: str
    secret: str


def _broker_class(provider: str) -> type[Broker]:
    if provider == SIM:
        from .sim.exchange import SimBroker

        return SimBroker
    if provider == ALPACA:
        from .alpaca import AlpacaBroker

        return AlpacaBroker
    raise ValueError(f"unknown broker provider {provider!r}")


def get_broker(credentials: BrokerCredentials) -> Broker:
    broker_class = _broker_class(credentials.provider)
    if credentials.provider == SIM:
        return broker_class(account_id=credentials.key_id)
    return broker_class(credentials)


# --- accounts ----------------------------------------------------------------------------
def desk_opens_accounts(provider: str) -> bool:
    """Whether the desk opens this provider's accounts itself (the paper exchange: paper
    only, no keys) rather than the trader linking one with keys. ValueError if unknown."""
    _broker_class(provider)
    return provider == SIM


def key_problem(provider: str, *, key_id: str | None, secret: str | None) -> KeyProblem | None:
    """What is wrong with keys given to link a `provider` account, before any broker call
    (None: nothing; a key id or secret of None is not judged). ValueError if unknown."""
    return _broker_class(provider).key_problem(key_id=key_id, secret=secret)


def open_paper_account() -> BrokerCredentials:
    """A freshly opened, funded paper-exchange account."""
    from .sim.exchange import open_account

    return BrokerCredentials(provider=SIM, paper=True, key_id=open_account(), secret="")


def periodic_work() -> int:
    """Every provider's scheduled work (the paper exchange matches its resting orders);
    returns how many accounts it touched."""
    return sum(_broker_class(provider).periodic_work() for provider in (SIM, ALPACA))


# --- order updates -----------------------------------------------------------------------
def own_order_update_stream_providers() -> frozenset[str]:
    """Providers whose accounts each get order_update_stream(); the others' updates arrive
    through paper_order_update_stream(), each naming its account's key id."""
    return _OWN_ORDER_UPDATE_STREAMS


def order_update_stream(
    credentials: BrokerCredentials, on_update: OrderUpdateHandler, on_status: FeedStatusHandler
) -> OrderUpdateStream:
    """A broker account's own order-update stream (Alpaca's trade_updates)."""
    if credentials.provider == ALPACA:
        from .alpaca import AlpacaOrderUpdateStream

        return AlpacaOrderUpdateStream(on_update, on_status, credentials)
    raise ValueError("paper-exchange updates come from paper_order_update_stream(), one feed")


def paper_order_update_stream(
    on_update: OrderUpdateHandler, on_status: FeedStatusHandler
) -> OrderUpdateStream:
    """Every paper account's order updates in one feed (each update names its account)."""
    from .sim.order_updates import SimOrderUpdateStream

    return SimOrderUpdateStream(on_update, on_status)


# --- the deployment's market data (settings.MARKET_DATA_PROVIDER) -----------------------
def market_data_credentials() -> BrokerCredentials:
    if settings.MARKET_DATA_PROVIDER == ALPACA:
        return BrokerCredentials(
            provider=ALPACA,
            paper=True,
            key_id=settings.ALPACA_MARKET_DATA_KEY_ID,
            secret=settings.ALPACA_MARKET_DATA_SECRET,
        )
    if settings.MARKET_DATA_PROVIDER == SIM:
        return BrokerCredentials(provider=SIM, paper=True, key_id="", secret="")
    raise ValueError(f"unknown MARKET_DATA_PROVIDER {settings.MARKET_DATA_PROVIDER!r}")


def market_data_broker() -> Broker:
    """Quotes, trades and bars over REST for the whole deployment."""
    return get_broker(market_data_credentials())


def market_data_stream(
    on_data: MarketDataHandler,
    on_status: FeedStatusHandler,
    on_refused: SymbolsRefusedHandler | None = None,
    *,
    quotes_per_second: float | None = None,
    trades_per_second: float | None = None,
) -> MarketDataStream:
    """The deployment's one upstream market-data connection.

    The paper exchange's fixed rates (benchmarks) default to settings.SIM_STREAM_*_PER_SECOND;
    Alpaca ignores them.
    """
    credentials = market_data_credentials()
    if credentials.provider == ALPACA:
        from .alpaca import AlpacaMarketDataStream

        return AlpacaMarketDataStream(on_data, on_status, credentials, on_refused=on_refused)
    from .sim.stream import SimMarketDataStream

    if quotes_per_second is None:
        quotes_per_second = settings.SIM_STREAM_QUOTES_PER_SECOND
    if trades_per_second is None:
        trades_per_second = settings.SIM_STREAM_TRADES_PER_SECOND
    return SimMarketDataStream(
        on_data,
        on_status,
        on_refused,
        quotes_per_second=quotes_per_second,
        trades_per_second=trades_per_second,
    )
