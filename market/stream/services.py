"""The stream's requests and client messages: parsed and limited, never a close."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings

from tradedesk.symbols import parse_symbols

STREAMS = ("quotes", "trades", "bars", "orders")
DEFAULT_STREAMS = ("quotes",)
MAX_CLIENT_FRAME_BYTES = 4096
CLIENT_ACTIONS = ("subscribe", "unsubscribe", "ping")


class StreamRequestError(ValueError):
    """A bad stream request or client message: becomes an `error` message, never a close."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ClientAction:
    action: str
    symbols: frozenset[str] = frozenset()
    streams: frozenset[str] = frozenset()


def parse_streams(values: Iterable[str]) -> frozenset[str]:
    streams = frozenset(v.strip().lower() for v in values if v.strip())
    unknown = sorted(streams - set(STREAMS))
    if unknown:
        raise StreamRequestError(
            "bad_stream", f"Unknown stream {unknown[0]!r}; use {', '.join(STREAMS)}."
        )
    return streams


def parse_stream_symbols(values: Iterable[str]) -> frozenset[str]:
    values = list(values)
    if not values:
        return frozenset()
    try:
        return frozenset(parse_symbols(",".join(values), limit=settings.STREAM_MAX_SYMBOLS))
    except ValueError as error:
        raise StreamRequestError("bad_symbols", str(error)) from None


def parse_client_action(text: str | None) -> ClientAction:
    """One client message: {"action": "subscribe"|"unsubscribe"|"ping", "symbols", "streams"}."""
    if text is None:
        raise StreamRequestError("bad_message", "Send JSON text frames.")
    if len(text.encode()) > MAX_CLIENT_FRAME_BYTES:
        raise StreamRequestError(
            "frame_too_large", f"Client messages are limited to {MAX_CLIENT_FRAME_BYTES} bytes."
        )
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json can read
        raise StreamRequestError("bad_message", "Not valid JSON.") from None
    if not isinstance(body, dict) or body.get("action") not in CLIENT_ACTIONS:
        raise StreamRequestError(
            "bad_action", f"Send an object whose action is one of {', '.join(CLIENT_ACTIONS)}."
        )
    lists = {}
    for field in ("symbols", "streams"):
        value = body.get(field, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise StreamRequestError("bad_message", f"{field} must be a list of strings.")
        lists[field] = value
    if body["action"] != "ping" and not lists["symbols"] and not lists["streams"]:
        raise StreamRequestError("bad_message", "Give symbols, streams or both.")
    return ClientAction(
        action=body["action"],
        symbols=parse_stream_symbols(lists["symbols"]),
        streams=parse_streams(lists["streams"]),
    )


def subscription_after(
    action: ClientAction, symbols: frozenset[str], streams: frozenset[str]
) -> tuple[frozenset[str], frozenset[str]]:
    """A connection's symbols and streams after a subscribe/unsubscribe, within the limits."""
    if action.action == "unsubscribe":
        return symbols - action.symbols, streams - action.streams
    wanted = symbols | action.symbols
    if len(wanted) > settings.STREAM_MAX_SYMBOLS:
        raise StreamRequestError(
            "too_many_symbols",
            f"At most {settings.STREAM_MAX_SYMBOLS} symbols per connection "
            f"(this would make {len(wanted)}).",
        )
    return wanted, streams | action.streams
