from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from accounts.models import User

from .models import Order


def orders_for(user: User) -> QuerySet[Order]:
    return Order.objects.filter(user=user, parent__isnull=True)


def order_for(user: User, order_id: object) -> Order:
    """One of the caller's own orders (404 for anyone else's, never 403)."""
    try:
        return Order.objects.select_related("broker_account").get(user=user, pk=int(str(order_id)))
    except (Order.DoesNotExist, ValueError, OverflowError):
        raise Http404("No such order.") from None
