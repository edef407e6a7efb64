"""Per-user rate limits on order commands: one counter per command, whichever door it came by."""

from __future__ import annotations

from django.conf import settings

from accounts.models import User
from tradedesk import ratelimit

COMMANDS = ("place", "replace", "cancel", "validate", "sync")


def limit(user: User, command: str) -> None:
    """Count one `command` of `user`; raise ratelimit.RateLimitExceeded when over its rate."""
    if command not in COMMANDS:
        raise ValueError(f"unknown order command {command!r}")
    ratelimit.hit(f"orders:{command}", str(user.pk), settings.ORDER_COMMAND_RATES.get(command))
