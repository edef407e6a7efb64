"""The Alpaca broker: alpaca-py behind the broker interface.

This package is the only place in the desk that imports alpaca-py; what leaves it is the
broker layer's data classes and errors.
"""

from .broker import AlpacaBroker
from .convert import MarketDay
from .streams import AlpacaMarketDataStream, AlpacaOrderUpdateStream

__all__ = ["AlpacaBroker", "AlpacaMarketDataStream", "AlpacaOrderUpdateStream", "MarketDay"]
