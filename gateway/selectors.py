from __future__ import annotations

import uuid
from datetime import datetime

from django.db.models import QuerySet
from django.db.models.functions import Coalesce
from django.http import Http404

from accounts.models import User
from orders.models import Order
from tradedesk.broker import types

from . import wire
from .models import ApiKey


def api_keys_for(user: User) -> QuerySet[ApiKey]:
    return (
        ApiKey.objects.filter(user=user)
        .select_related("broker_account")
        .order_by("-created_at", "-id")
    )


def api_key_for(user: User, key_pk: object) -> ApiKey:
    """One of the caller's own keys (404 for anyone else's)."""
    try:
        return api_keys_for(user).get(pk=int(str(key_pk)))
    except (ApiKey.DoesNotExist, ValueError, OverflowError):
        raise Http404("No such API key.") from None


def _account_orders(api_key: ApiKey) -> QuerySet[Order]:
    return Order.objects.filter(
        user=api_key.user_id, broker_account=api_key.broker_account_id
    ).prefetch_related("legs")


def gateway_orders(
    api_key: ApiKey,
    *,
    status: str,
    after: datetime | None,
    until: datetime | None,
    symbols: list[str],
    side: str,
    ascending: bool,
    limit: int,
) -> list[Order]:
    """Alpaca's GET /v2/orders over the desk's record of the key's account: top-level
    orders (legs come inside their parent), by submission time as the wire shows it (the
    broker's), both bounds exclusive."""
    found = (
        _account_orders(api_key)
        .filter(parent__isnull=True)
        .annotate(submitted=Coalesce("submitted_at", "created_at"))
    )
    if status == "open":
        found = found.exclude(status__in=types.TERMINAL_STATUSES)
    elif status == "closed":
        found = found.filter(status__in=types.TERMINAL_STATUSES)
    if after is not None:
        found = found.filter(submitted__gt=after)
    if until is not None:
        found = found.filter(submitted__lt=until)
    if symbols:
        found = found.filter(symbol__in=symbols)
    if side:
        found = found.filter(side=side)
    ordering = ("submitted", "id") if ascending else ("-submitted", "-id")
    return list(found.order_by(*ordering)[:limit])


def gateway_order(api_key: ApiKey, order_id: str) -> Order | None:
    """The key's account's order by its wire id (wire.order_id); None for anything else,
    another user's order included. Raises wire.BadRequest for an id that is no UUID."""
    try:
        canonical = str(uuid.UUID(order_id))
    except ValueError:
        raise wire.BadRequest("order_id is missing") from None
    found = _account_orders(api_key).filter(broker_order_id=canonical).first()
    if found is not None:
        return found
    for pending in _account_orders(api_key).filter(broker_order_id=""):
        if wire.order_id(pending) == canonical:
            return pending
    return None


def gateway_order_by_client_id(api_key: ApiKey, client_order_id: str) -> Order | None:
    return _account_orders(api_key).filter(client_order_id=client_order_id).first()
