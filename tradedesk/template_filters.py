"""Filters every template has (settings TEMPLATES builtins): numbers as a trader writes them."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import template

register = template.Library()


@register.filter
def plain(value):
    """A stored decimal without its storage padding or an exponent: 2, 2.5, 100, 0.0001
    (`Decimal.normalize` alone shows 100 as 1E+2). Anything not a number is shown as it is."""
    if value is None or value == "":
        return ""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return value
    if not number.is_finite():
        return value
    return f"{number.normalize():f}"
