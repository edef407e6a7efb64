"""API keys for the gateway: issue, authenticate, revoke, and the limits a key carries.

A key's secret is shown once and stored as HMAC-SHA256(server key, secret): a leaked table
gives nothing to replay, and checking costs one HMAC (bots call many times a second, so a
slow password hash would be the wrong tool for 40 random characters)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from channels.layers import get_channel_layer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import BrokerAccount, User, validate_allowlist
from accounts.services import (
    address_allowed,
    address_in_allowlist,
    allowlist_networks,
    broker_for,
)
from orders.events import run_from_sync
from orders.models import Order
from orders.services import (
    IdempotencyConflict,
    NoPosition,
    Placement,
    close_position,
    place_order,
)
from orders.sync.upsert import upsert_broker_orders
from orders.validation import OrderInput, cached_asset, cached_quote
from tradedesk import ratelimit
from tradedesk.broker import Broker, calendar, types
from tradedesk.broker.errors import BrokerUnavailable, OrderNotFound, OrderRejected

from . import wire
from .models import ApiKey, validate_rate

GATEWAY_SOURCE = "gateway"

KEY_ID_PREFIX = "TD"
_KEY_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
# last_used_at is written at most this often per key (not a row write per request).
LAST_USED_RESOLUTION_S = 60


class KeyRefused(Exception):
    """The request's key may not be used: `status` 401 (unknown, wrong or revoked) or 403
    (from outside the key's allowlist)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class KeyLimitExceeded(Exception):
    """An order over the key's own max notional."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    secret: str  # shown once, never stored


def secret_digest(secret: str) -> str:
    server_key = hashlib.sha256(f"gateway-api-keys:{settings.SECRET_KEY}".encode()).digest()
    return hmac.new(server_key, secret.encode(), hashlib.sha256).hexdigest()


def _new_key_id() -> str:
    return KEY_ID_PREFIX + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(18))


def create_api_key(
    *,
    user: User,
    broker_account: BrokerAccount,
    label: str,
    ip_allowlist: str = "",
    rate_limit: str = "",
    max_notional: Decimal | None = None,
    second_factor_verified: bool = False,
) -> IssuedKey:
    """A new key on one of the user's own active broker accounts. ValidationError for an
    account not theirs, a bad allowlist, rate or max notional."""
    if broker_account.user_id != user.pk or not broker_account.is_active:
        raise ValidationError("No such broker account.", code="not_found")
    validate_allowlist(ip_allowlist)
    validate_rate(rate_limit)
    if max_notional is not None and max_notional <= 0:
        raise ValidationError("max_notional must be greater than zero.", code="not_positive")
    secret = secrets.token_urlsafe(30)
    api_key = ApiKey.objects.create(
        user=user,
        broker_account=broker_account,
        label=label,
        key_id=_new_key_id(),
        secret_digest=secret_digest(secret),
        ip_allowlist="\n".join(str(network) for network in allowlist_networks(ip_allowlist)),
        rate_limit=rate_limit.strip(),
        max_notional=max_notional,
        second_factor_verified=second_factor_verified,
    )
    return IssuedKey(api_key=api_key, secret=secret)


def key_group(api_key: ApiKey) -> str:
    """The channel-layer group of the key's open trade_updates connections."""
    return f"gateway.key.{api_key.pk}"


def revoke_api_key(api_key: ApiKey) -> ApiKey:
    """The key stops working at once: requests get 401, and its open streams are closed."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        group = key_group(api_key)

        async def close_streams() -> None:
            layer = get_channel_layer()
            if layer is not None:
                await layer.group_send(group, {"type": "key.revoked"})

        transaction.on_commit(lambda: run_from_sync(close_streams))
    return api_key


def authenticate_key(*, key_id: str, secret: str, address: str) -> ApiKey:
    """The active key these credentials name, used from `address`; KeyRefused otherwise.
    The secret is compared in constant time, and a digest is computed even for an unknown
    key id, so timing does not tell which key ids exist."""
    api_key = (
        ApiKey.objects.select_related("user", "broker_account").filter(key_id=key_id).first()
        if key_id
        else None
    )
    digest = secret_digest(secret or "")
    if api_key is None or not hmac.compare_digest(digest, api_key.secret_digest):
        raise KeyRefused(401, "unknown key or wrong secret")
    if not api_key.is_active or not api_key.user.is_active or not api_key.broker_account.is_active:
        raise KeyRefused(401, "the key is revoked")
    if not (
        address_in_allowlist(api_key.ip_allowlist, address)
        and address_allowed(api_key.user, address)  # the user's door rule, refusals logged
    ):
        raise KeyRefused(403, f"address {address or '(unknown)'} is not in the key's allowlist")
    _touch(api_key)
    return api_key


def _touch(api_key: ApiKey) -> None:
    now = timezone.now()
    last = api_key.last_used_at
    if last is None or (now - last).total_seconds() >= LAST_USED_RESOLUTION_S:
        api_key.last_used_at = now
        with transaction.atomic():
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)


def key_rate(api_key: ApiKey) -> ratelimit.Rate | None:
    return ratelimit.parse_rate(api_key.rate_limit or settings.GATEWAY_KEY_RATE_LIMIT)


def count_request(api_key: ApiKey) -> None:
    """One request of the key against its rate; ratelimit.RateLimitExceeded over it."""
    ratelimit.hit("gateway:key", api_key.key_id, key_rate(api_key))


def check_key_limits(api_key: ApiKey, order_input: OrderInput, price: Decimal | None) -> None:
    """The key's own max notional (the desk's limits are the gate's): the order's value is its
    notional, or qty times its limit/stop price, else times `price` (the market).
    Raises KeyLimitExceeded."""
    if api_key.max_notional is None:
        return
    if order_input.notional is not None:
        value = order_input.notional
    else:
        unit = order_input.limit_price or order_input.stop_price or price
        if unit is None or order_input.qty is None:
            return  # no price to judge by: the gate still judges the order itself
        value = order_input.qty * unit
    if value > api_key.max_notional:
        raise KeyLimitExceeded(
            f"order value {value:.2f} exceeds this key's max notional {api_key.max_notional}"
        )


# --- what the gateway's endpoints ask of the desk --------------------------------------
def broker_of(api_key: ApiKey) -> Broker:
    return broker_for(api_key.broker_account)


def market_days(start: date, end: date) -> list[dict]:
    """Alpaca's calendar: the exchange's sessions (early closes included) from start to end."""
    zone = calendar.market_zone()
    days = []
    day = start
    while day <= end:
        noon = datetime.combine(day, time(12), tzinfo=zone)
        session = calendar.session_on_date_of(noon)
        if session is not None:
            days.append(wire.calendar_day(*(at.astimezone(zone) for at in session)))
        day += timedelta(days=1)
    return days


def asset_by_symbol_or_id(api_key: ApiKey, symbol_or_id: str) -> types.Asset:
    """Raises OrderRejected for an unknown one (as Broker.get_asset)."""
    broker = broker_of(api_key)
    if wire.is_uuid(symbol_or_id):  # an asset id
        for listed in broker.list_assets():
            if listed.id == symbol_or_id:
                return listed
        raise OrderRejected("asset not found", http_status=404)
    return broker.get_asset(symbol_or_id.upper())


def positions(api_key: ApiKey) -> list[dict]:
    broker = broker_of(api_key)
    listed = []
    for held in broker.list_positions():
        known = cached_asset(broker, held.symbol)
        listed.append(wire.position(held, known.exchange if known else ""))
    return listed


def place(api_key: ApiKey, order_input: OrderInput) -> Placement:
    """A bot's order through the desk's gate, after the key's own limits. Alpaca refuses a
    reused client_order_id even with the same body (422), so a repeat is a conflict here."""
    price = None
    if api_key.max_notional is not None and order_input.notional is None:
        quote = cached_quote(broker_of(api_key), order_input.symbol)
        price = quote and (quote.ask_price if order_input.side == "buy" else quote.bid_price)
    check_key_limits(api_key, order_input, price)
    placement = place_order(
        user=api_key.user,
        broker_account=api_key.broker_account,
        order_input=order_input,
        source=GATEWAY_SOURCE,
        second_factor_verified=api_key.second_factor_verified,
    )
    if not placement.created:
        raise IdempotencyConflict(order_input.client_order_id)
    refresh_legs(api_key, placement.order)
    return placement


def refresh_legs(api_key: ApiKey, order: Order) -> None:
    """A bracket/oco/oto's legs as the desk's child orders, as the broker has them now (the
    sync would bring them later): Alpaca's answers carry the legs, so a bot expects them at
    once, and legs a cancel or replace closed must not stay open in the desk's record."""
    if order.order_class == "simple" or not order.broker_order_id:
        return
    with contextlib.suppress(BrokerUnavailable, OrderNotFound):
        snapshot = broker_of(api_key).get_order(order.broker_order_id)
        upsert_broker_orders(api_key.broker_account, [snapshot], source=GATEWAY_SOURCE)


def close(
    api_key: ApiKey, symbol: str, *, qty: Decimal | None, percentage: Decimal | None
) -> Placement:
    """DELETE /v2/positions/{symbol}: all of it, `qty` shares, or `percentage` of it."""
    if qty is not None and percentage is not None:
        raise wire.BadRequest("only one of qty or percentage")
    if percentage is not None:
        if not 0 < percentage <= 100:
            raise wire.BadRequest("percentage must be between 0 and 100")
        held = {p.symbol: p for p in broker_of(api_key).list_positions()}
        if symbol not in held:
            raise NoPosition(symbol)
        qty = abs(held[symbol].qty) * percentage / 100
    if qty is not None and qty <= 0:
        raise wire.BadRequest("qty must be greater than zero")
    return close_position(
        user=api_key.user,
        broker_account=api_key.broker_account,
        symbol=symbol,
        qty=qty,
        source=GATEWAY_SOURCE,
        second_factor_verified=api_key.second_factor_verified,
    )
