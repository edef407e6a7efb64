"""The webhook signature (Stripe's scheme), for the desk and for receivers to copy.

Every delivery carries

    X-TradeDesk-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{raw body}")>
    X-TradeDesk-Delivery: <this attempt's id, unique>

A receiver verifies the signature over the raw body as received (before parsing it), rejects a
`t` older than its tolerance (a captured request replayed later) and a delivery id it has
seen (replayed within the tolerance). The body's `id` is the notification's: the same on every
retry, so a receiver acts on it once. Only the standard library: copy this file as it is.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-TradeDesk-Signature"
DELIVERY_HEADER = "X-TradeDesk-Delivery"
DEFAULT_TOLERANCE_SECONDS = 300


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The X-TradeDesk-Signature value for `body` sent at `timestamp`."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> bool:
    """Whether `header` signs `body` with `secret`, made at most `tolerance` seconds ago.

    Several v1 values may be present (a receiver rotating secrets checks each); any match will
    do. Checking the delivery id against those already seen is the receiver's part.
    """
    timestamp, signatures = None, []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).partition(",v1=")[2]
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)
