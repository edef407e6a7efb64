"""The broker layer: one interface, plain data classes, the paper exchange and Alpaca.

Nothing outside this package imports alpaca-py.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import Broker, FeedStatusHandler, OrderUpdateHandler, OrderUpdateStream


@dataclass(frozen=True)
class BrokerCredentials:
    provider: str  # "sim" | "alpaca"
    paper: bool
    key_id: str
    secret: str


def get_broker(credentials: BrokerCredentials) -> Broker:
    if credentials.provider == "sim":
        from .sim.exchange import SimBroker

        return SimBroker(account_id=credentials.key_id)
    if credentials.provider == "alpaca":
        from .alpaca import AlpacaBroker

        return AlpacaBroker(credentials)
    raise ValueError(f"unknown broker provider {credentials.provider!r}")


def order_update_stream(
    credentials: BrokerCredentials, on_update: OrderUpdateHandler, on_status: FeedStatusHandler
) -> OrderUpdateStream:
    """A broker account's own order-update stream (Alpaca's trade_updates)."""
    if credentials.provider == "alpaca":
        from .alpaca import AlpacaOrderUpdateStream

        return AlpacaOrderUpdateStream(on_update, on_status, credentials)
    raise ValueError("paper-exchange updates come from paper_order_update_stream(), one feed")


def paper_order_update_stream(
    on_update: OrderUpdateHandler, on_status: FeedStatusHandler
) -> OrderUpdateStream:
    """Every paper account's order updates in one feed (each update names its account)."""
    from .sim.order_updates import SimOrderUpdateStream

    return SimOrderUpdateStream(on_update, on_status)
