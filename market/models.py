from __future__ import annotations

from django.conf import settings
from django.db import models


class WatchlistItem(models.Model):
    """A symbol on a trader's watchlist, in the trader's order."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="watchlist_items"
    )
    symbol = models.CharField(max_length=16)
    position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "symbol"], name="watchlist_user_symbol_unique")
        ]

    def __str__(self) -> str:
        return f"{self.symbol} ({self.user_id})"
