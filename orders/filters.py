"""API filters: order history (?status=&symbol=&side=&after=&before=) and position
snapshots (?symbol=&after=&before=)."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from tradedesk.broker import types

from .models import Order, PositionSnapshot

# "open" and "closed" group Alpaca's statuses the way Alpaca's own ?status= does; a status the
# desk has not seen before is open (until the broker says otherwise).
STATUS_GROUPS = {
    "open": ~Q(status__in=types.TERMINAL_STATUSES),
    "closed": Q(status__in=types.TERMINAL_STATUSES),
}


def by_symbol(queryset: QuerySet, name: str, value: str) -> QuerySet:
    return queryset.filter(symbol=value.strip().upper())


class OrderFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(
        choices=[(name, name) for name in ("open", "closed", "all", *types.ORDER_STATUSES)],
        method="filter_status",
        help_text="open, closed, all, or one of Alpaca's order statuses.",
    )
    symbol = django_filters.CharFilter(method=by_symbol, max_length=16)
    side = django_filters.ChoiceFilter(choices=[(side, side) for side in types.ORDER_SIDES])
    after = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="Created at or after (ISO 8601)."
    )
    before = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="Created before (ISO 8601)."
    )

    class Meta:
        model = Order
        fields = ["status", "symbol", "side", "after", "before"]

    def filter_status(self, queryset: QuerySet[Order], name: str, value: str) -> QuerySet[Order]:
        if value == "all":
            return queryset
        return queryset.filter(STATUS_GROUPS.get(value, Q(status=value)))


class PositionSnapshotFilter(django_filters.FilterSet):
    symbol = django_filters.CharFilter(method=by_symbol, max_length=16)
    after = django_filters.IsoDateTimeFilter(
        field_name="snapshot_at", lookup_expr="gte", help_text="Taken at or after (ISO 8601)."
    )
    before = django_filters.IsoDateTimeFilter(
        field_name="snapshot_at", lookup_expr="lt", help_text="Taken before (ISO 8601)."
    )

    class Meta:
        model = PositionSnapshot
        fields = ["symbol", "after", "before"]
