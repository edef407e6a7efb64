"""The stream's wire messages, and the envelope the hub publishes them in.

The hub serialises each upstream message to JSON once; relays route it by the envelope's
kind and symbol without parsing the JSON, and connections splice the JSON text into frames.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii

from market.services import bar_json, quote_json
from tradedesk.broker.types import Bar, Quote, Trade

STATUS_KIND = "status"
ERROR_KIND = "error"  # published with a symbol: the feed refused it (its subscribers are told)


def market_message(item: Quote | Trade | Bar) -> dict:
    if isinstance(item, Quote):
        return {"type": "quote", **quote_json(item)}
    if isinstance(item, Trade):
        return {
            "type": "trade",
            "symbol": item.symbol,
            "price": str(item.price),
            "size": str(item.size),
            "timestamp": item.timestamp.isoformat(),
        }
    return {"type": "bar", "symbol": item.symbol, **bar_json(item)}


def status_message(state: str, detail: str = "", **extra) -> dict:
    return {"type": "status", "state": state, "detail": detail, **extra}


def error_message(code: str, message: str) -> dict:
    return {"type": "error", "code": code, "message": message}


# One encoder for every message: json.dumps with options builds a new one per call.
dumps = json.JSONEncoder(separators=(",", ":")).encode


def envelope(message: dict) -> str:
    """`kind|symbol|json`: what the hub publishes once per upstream message."""
    return f"{message['type']}|{message.get('symbol', '')}|{dumps(message)}"


def market_envelope(item: Quote | Trade | Bar) -> str:
    """envelope(market_message(item)), the same text: quotes and trades (the hub's work at the
    feed's rate) are written straight out, without a dict and the encoder, at half the CPU.
    Their prices, sizes and times are digits, signs, points and letters: nothing to escape."""
    symbol = item.symbol
    if isinstance(item, Quote):
        return (
            f'quote|{symbol}|{{"type":"quote","symbol":{encode_basestring_ascii(symbol)},'
            f'"bid_price":"{item.bid_price}","bid_size":"{item.bid_size}",'
            f'"ask_price":"{item.ask_price}","ask_size":"{item.ask_size}",'
            f'"timestamp":"{item.timestamp.isoformat()}"}}'
        )
    if isinstance(item, Trade):
        return (
            f'trade|{symbol}|{{"type":"trade","symbol":{encode_basestring_ascii(symbol)},'
            f'"price":"{item.price}","size":"{item.size}",'
            f'"timestamp":"{item.timestamp.isoformat()}"}}'
        )
    return envelope(market_message(item))


def frame(bodies: list[str]) -> str:
    """Every frame is a JSON array of messages; bodies are already JSON text."""
    return "[" + ",".join(bodies) + "]"
