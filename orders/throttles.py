"""Per-user rate limits on order commands: one counter per command, whichever door it came by."""

from __future__ import annotations

from django.conf import settings

from accounts.models import User
from tradedesk import ratelimit


def limit(user: User, command: str) -> None:
    """Count one `command` of `user` (a key of ORDER_COMMAND_RATES: place, replace, cancel,
    validate, sync); raise ratelimit.RateLimitExceeded when over its rate."""
    ratelimit.hit(f"orders:{command}", str(user.pk), settings.ORDER_COMMAND_RATES[command])
