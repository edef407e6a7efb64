"""The nav's unread count, on every page a logged-in user sees (counted only when rendered)."""

from __future__ import annotations

from functools import partial

from . import selectors


def unread_notifications(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    # A callable: the template calls it, so a page that doesn't show the nav costs no query.
    return {"unread_notifications": partial(selectors.unread_count, user)}
