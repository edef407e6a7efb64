"""API filters: order history (?status=&symbol=&side=&after=&before=) and position
snapshots (?symbol=&after=&before=)."""

from __future__ import annotations

from datetime import UTC

import django_filters
from django import forms
from django.db.models import Q, QuerySet
from django_filters.fields import IsoDateTimeField

from tradedesk.broker import types

from .models import STATUSES, Order, PositionSnapshot

# "open" and "closed" group Alpaca's statuses the way Alpaca's own ?status= does; a status the
# desk has not seen before is open (until the broker says otherwise).
STATUS_GROUPS = {
    "open": ~Q(status__in=types.TERMINAL_STATUSES),
    "closed": Q(status__in=types.TERMINAL_STATUSES),
}


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 time that exists in UTC: 9999-12-31T23:59:59-12:00 is past year 9999 there,
    and the database adapter's conversion overflowed (a 500 on SQLite); now a 400."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is not None:
            try:
                value.astimezone(UTC)
            except OverflowError:
                raise forms.ValidationError("That time is out of range.", code="invalid") from None
        return value


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


def by_symbol(queryset: QuerySet, name: str, value: str) -> QuerySet:
    return queryset.filter(symbol=value.strip().upper())


class OrderFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(
        choices=[(name, name) for name in ("open", "closed", "all", *STATUSES)],
        method="filter_status",
        help_text="open, closed, all, or one of Alpaca's order statuses.",
    )
    symbol = django_filters.CharFilter(method=by_symbol, max_length=16)
    side = django_filters.ChoiceFilter(choices=[(side, side) for side in types.ORDER_SIDES])
    after = UtcIsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="Created at or after (ISO 8601)."
    )
    before = UtcIsoDateTimeFilter(
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
    after = UtcIsoDateTimeFilter(
        field_name="snapshot_at", lookup_expr="gte", help_text="Taken at or after (ISO 8601)."
    )
    before = UtcIsoDateTimeFilter(
        field_name="snapshot_at", lookup_expr="lt", help_text="Taken before (ISO 8601)."
    )

    class Meta:
        model = PositionSnapshot
        fields = ["symbol", "after", "before"]
