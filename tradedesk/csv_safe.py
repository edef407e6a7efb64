"""CSV cells that spreadsheets will not run: every CSV export writes its rows through here.

A cell starting with = + - @ (or a tab or carriage return, which some spreadsheets skip
before looking) is read as a formula — `=HYPERLINK(...)` in a client_order_id runs when the
file is opened. Such text cells get a leading single quote (OWASP's advice), which
spreadsheets show as text. Numbers (Decimal, int) are left alone: a negative amount stays a
number.
"""

from __future__ import annotations

from collections.abc import Iterable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_row(values: Iterable[object]) -> list[object]:
    return [escape_cell(value) for value in values]
