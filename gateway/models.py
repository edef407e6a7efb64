"""Desk-issued API keys: how Alpaca bots authenticate to the gateway."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from accounts.models import validate_allowlist
from tradedesk import ratelimit


def validate_rate(text: str) -> None:
    try:
        ratelimit.parse_rate(text)
    except ValueError as error:
        raise ValidationError(str(error), code="invalid_rate") from None


class ApiKey(models.Model):
    """One bot's key, scoped to one broker account. The secret is shown once at creation and
    stored only as an HMAC-SHA256 digest (gateway.services.secret_digest)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    broker_account = models.ForeignKey(
        "accounts.BrokerAccount", on_delete=models.CASCADE, related_name="api_keys"
    )
    label = models.CharField(max_length=100)
    key_id = models.CharField(max_length=32, unique=True)
    secret_digest = models.CharField(max_length=64)
    ip_allowlist = models.TextField(
        "IP allowlist",
        blank=True,
        default="",
        validators=[validate_allowlist],
        help_text="CIDR networks the key may be used from, one a line (empty: anywhere).",
    )
    # "N/period" as tradedesk.ratelimit reads it; empty: GATEWAY_KEY_RATE_LIMIT.
    rate_limit = models.CharField(max_length=32, blank=True, default="", validators=[validate_rate])
    # The largest order value (notional, or qty times price) the key may place; empty: no limit.
    max_notional = models.DecimalField(
        max_digits=24,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
    )
    # The key was created from a session or token that passed a second factor: its orders
    # count as verified where 2FA is required for orders.
    second_factor_verified = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "-created_at"], name="api_key_user_created")]

    def __str__(self) -> str:
        return f"{self.label} ({self.key_id}{', revoked' if self.revoked_at else ''})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
