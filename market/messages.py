"""The stream's wire messages, and the envelope the hub publishes them in.

The hub serialises each upstream message to JSON once; relays route it by the envelope's
kind and symbol without parsing the JSON, and connections splice the JSON text into frames.
"""

from __future__ import annotations

import json

from tradedesk.broker.types import Bar, Quote, Trade

from .api import bar_json, quote_json

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


def dumps(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"))


def envelope(message: dict) -> str:
    """`kind|symbol|json`: what the hub publishes once per upstream message."""
    return f"{message['type']}|{message.get('symbol', '')}|{dumps(message)}"


def frame(bodies: list[str]) -> str:
    """Every frame is a JSON array of messages; bodies are already JSON text."""
    return "[" + ",".join(bodies) + "]"
