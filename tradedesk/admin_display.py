"""What every app's admin shares: audit records that stay as written, numbers as a trader
writes them."""

from __future__ import annotations

from django.db import models

from tradedesk.template_filters import plain


class AppendOnlyAdmin:
    """ModelAdmin mixin for the audit trail: listed and viewed, never added, changed or
    deleted from admin — for superusers too (they were editable once)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class DecimalsAsWritten:
    """ModelAdmin mixin: the model's decimals in lists and read-only fields as a trader writes
    them (`2`, `187.5`), not with their storage padding (`2.000000000`). Editable fields stay
    as the form shows them."""

    def __init__(self, *args, **kwargs):  # a ModelAdmin's (model, site), an inline's too
        super().__init__(*args, **kwargs)
        self._as_written: dict[str, str] = {}
        for field in self.model._meta.fields:
            if isinstance(field, models.DecimalField):
                name = f"{field.name}_as_written"
                setattr(self, name, _as_written(field))
                self._as_written[field.name] = name

    def _swap(self, names):
        return [self._as_written.get(name, name) for name in names]

    def _read_only(self, request, obj) -> set[str]:
        if not self.has_change_permission(request, obj):
            return set(self._as_written)  # a view-only page shows every field read-only
        return set(super().get_readonly_fields(request, obj)) & set(self._as_written)

    def get_list_display(self, request):
        return self._swap(super().get_list_display(request))

    def get_readonly_fields(self, request, obj=None):
        read_only = self._read_only(request, obj)
        return [
            self._as_written[name] if name in read_only else name
            for name in super().get_readonly_fields(request, obj)
        ]

    def get_fields(self, request, obj=None):
        read_only = self._read_only(request, obj)
        return [
            self._as_written[name] if name in read_only else name
            for name in super().get_fields(request, obj)
        ]

    def get_exclude(self, request, obj=None):
        # The shown copy replaces the field; the form must not offer the field itself.
        return [*(super().get_exclude(request, obj) or []), *self._read_only(request, obj)]


def _as_written(field: models.DecimalField):
    def show(obj):
        return plain(getattr(obj, field.name))

    show.short_description = field.verbose_name
    show.admin_order_field = field.name
    return show
