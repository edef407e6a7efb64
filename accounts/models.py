from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from encrypted_fields.fields import EncryptedCharField


class User(AbstractUser):
    """The desk's user (custom from the first migration, so it can grow)."""


class BrokerAccount(models.Model):
    PROVIDER_SIM = "sim"
    PROVIDER_ALPACA = "alpaca"
    PROVIDERS = [(PROVIDER_SIM, "Paper exchange"), (PROVIDER_ALPACA, "Alpaca")]

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="broker_accounts")
    provider = models.CharField(max_length=8, choices=PROVIDERS)
    paper = models.BooleanField(default=True)
    label = models.CharField(max_length=100)
    key_id = models.CharField(max_length=128)
    # Encrypted at rest with a key derived from SECRET_KEY and FIELD_ENCRYPTION_SALT.
    secret = EncryptedCharField(max_length=256, blank=True, null=True)
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
