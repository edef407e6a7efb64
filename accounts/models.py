from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.crypto import salted_hmac

from .encryption import EncryptedSecretField, UnreadableSecret


class User(AbstractUser):
    """The desk's user (custom from the first migration, so it can grow)."""

    # Set by accounts.services.revoke_sessions: tokens issued before it are refused, and
    # sessions logged in before it end (it is part of the session auth hash).
    tokens_valid_after = models.DateTimeField(null=True, blank=True, editable=False)

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
