"""The broker layer: one interface, plain data classes, the paper exchange and Alpaca.

Nothing outside this package imports alpaca-py.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import Broker


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
