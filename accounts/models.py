from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.crypto import salted_hmac

from tradedesk.client_ip import parse_networks

from .encryption import EncryptedSecretField, UnreadableSecret


def allowlist_entries(text: str) -> list[str]:
    """An allowlist as written: CIDR networks or addresses, one a line or comma-separated."""
    return [entry.strip() for entry in text.replace(",", "\n").splitlines() if entry.strip()]


def validate_allowlist(text: str) -> None:
    try:
        parse_networks(allowlist_entries(text))
    except ValueError as error:
        raise ValidationError(str(error), code="invalid_network") from None


def approval_threshold(when_empty: str) -> models.DecimalField:
    """An override of APPROVAL_NOTIONAL (orders.approvals reads account, then user, then desk)."""
    return models.DecimalField(
        "approval threshold ($)",
        max_digits=24,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Orders above this notional wait for another operator's approval "
        f"(empty: {when_empty}).",
    )


class User(AbstractUser):
    """The desk's user (custom from the first migration, so it can grow)."""

    two_factor_required = models.BooleanField(
        "must use two-factor authentication",
        default=False,
        help_text="Set by an operator: the user must enrol and use a second factor to log in.",
    )
    ip_allowlist = models.TextField(
        "IP allowlist",
        blank=True,
        default="",
        validators=[validate_allowlist],
        help_text="CIDR networks the user may come from, one a line (empty: anywhere). "
        "Enforced on the pages, the API and the stream.",
    )
    # Set by accounts.services.revoke_sessions: tokens issued before it are refused, and
    # sessions logged in before it end (it is part of the session auth hash).
    tokens_valid_after = models.DateTimeField(null=True, blank=True, editable=False)
    approval_notional = approval_threshold("the desk's APPROVAL_NOTIONAL")

    @classmethod
    def from_db(cls, db, field_names, values):
        user = super().from_db(db, field_names, values)
        # What accounts.services.revoke_on_change compares a save against (deactivation).
        user._active_when_loaded = user.__dict__.get("is_active")
        return user

    def _get_session_auth_hash(self, secret=None):
        # Django's hash (an HMAC of the password, checked on every request), plus the revocation
        # time once there is one: changing it logs every session out, as a password change does.
        if self.tokens_valid_after is None:
            return super()._get_session_auth_hash(secret=secret)
        return salted_hmac(
            "accounts.User.get_session_auth_hash",
            f"{self.password}|{self.tokens_valid_after.isoformat()}",
            secret=secret,
            algorithm="sha256",
        ).hexdigest()


class BrokerAccount(models.Model):
    PROVIDER_SIM = "sim"
    PROVIDER_ALPACA = "alpaca"
    PROVIDERS = [(PROVIDER_SIM, "Paper exchange"), (PROVIDER_ALPACA, "Alpaca")]

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="broker_accounts")
    provider = models.CharField(max_length=8, choices=PROVIDERS)
    paper = models.BooleanField(default=True)
    label = models.CharField(max_length=100)
    key_id = models.CharField(max_length=128)
    # Encrypted at rest with FIELD_ENCRYPTION_KEY (accounts.encryption).
    secret = EncryptedSecretField(max_length=256, blank=True, null=True)
    is_default = models.BooleanField(default=False)
    # Unlinking keeps the row so the account's orders stay in history.
    is_active = models.BooleanField(default=True)
    approval_notional = approval_threshold("the user's, else the desk's")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user"],
                condition=models.Q(is_default=True, is_active=True),
                name="one_default_broker_account_per_user",
            ),
            models.CheckConstraint(
                condition=models.Q(provider__in=["sim", "alpaca"]),
                name="broker_account_provider_valid",
            ),
        ]
        indexes = [models.Index(fields=["user", "is_active"])]

    def __str__(self) -> str:
        return f"{self.label} ({self.get_provider_display()}, {'paper' if self.paper else 'live'})"

    @property
    def key_id_last4(self) -> str:
        return self.key_id[-4:]

    @property
    def secret_readable(self) -> bool:
        """False when no configured FIELD_ENCRYPTION_KEY decrypts the stored secret."""
        return not isinstance(self.secret, UnreadableSecret)
