"""Broker secrets encrypted at rest with FIELD_ENCRYPTION_KEY (Fernet, rotatable).

Replaces django-fernet-encrypted-fields, which (0.4.0) had two faults no setting avoids:
- a secret it could not decrypt (a wrong or rotated key) was returned as its ciphertext,
  silently, and that ciphertext would have gone to the broker as the secret;
- its Field.clean marks the field object shared by every instance of the model as "already
  decrypted" and unmarks it only when validation passes: one failed admin save (a secret over
  max_length) left every later read in the process returning ciphertext.
Here decryption happens only when a value comes from the database, the field holds no state,
and a value no key decrypts is an UnreadableSecret: kept as stored, never usable as a secret.
The storage format is the library's (a Fernet token as text), so existing rows read as before
through the decrypt-only legacy keys derived from SECRET_KEY (settings: FIELD_ENCRYPTION_*).
"""

from __future__ import annotations

import base64
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from django.conf import settings
from django.db import models


class UnreadableSecret:
    """A stored secret that no configured key decrypts. Saving it back keeps it unchanged."""

    __slots__ = ("ciphertext",)

    def __init__(self, ciphertext: str) -> None:
        self.ciphertext = ciphertext

    def __repr__(self) -> str:
        return "<unreadable secret>"

    def __eq__(self, other) -> bool:
        return isinstance(other, UnreadableSecret) and other.ciphertext == self.ciphertext

    def __hash__(self) -> int:
        return hash(self.ciphertext)


@cache
def _legacy_key(secret_key: str, salt: str) -> bytes:
    """The key django-fernet-encrypted-fields derived from SECRET_KEY and a salt."""
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt.encode(), iterations=100_000)
    return base64.urlsafe_b64encode(kdf.derive(secret_key.encode()))


@cache
def _fernet(keys: tuple[str, ...], legacy: tuple[tuple[str, str], ...]) -> MultiFernet:
    fernets = [Fernet(key.encode()) for key in keys]
    fernets += [Fernet(_legacy_key(secret, salt)) for secret, salt in legacy]
    return MultiFernet(fernets)


def fernet() -> MultiFernet:
    """The configured keys: FIELD_ENCRYPTION_KEY's first encrypts; all, then legacy, decrypt."""
    secret_keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    legacy = tuple(
        (secret, salt) for secret in secret_keys for salt in settings.FIELD_ENCRYPTION_LEGACY_SALTS
    )
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEY), legacy)


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str | UnreadableSecret:
    try:
        return fernet().decrypt(ciphertext.encode()).decode()
    except (InvalidToken, UnicodeError):
        return UnreadableSecret(ciphertext)


def rotated(ciphertext: str) -> str | None:
    """The ciphertext re-encrypted with the first key; None if no key decrypts it."""
    try:
        return fernet().rotate(ciphertext.encode()).decode()
    except InvalidToken:
        return None


class EncryptedSecretField(models.TextField):
    """Plaintext in Python, a Fernet token in the database; empty is NULL."""

    def from_db_value(self, value, expression, connection):
        return decrypt(value) if value else value

    def to_python(self, value):
        # Values from forms and assignments are plaintext already: never decrypted here.
        return value

    def get_prep_value(self, value):
        if isinstance(value, UnreadableSecret):
            return value.ciphertext
        if value is None or value == "":
            return None
        return encrypt(str(value))


def reencrypt_column(model, field: str) -> tuple[int, int]:
    """Re-encrypt every stored value of `model.field` with the first key: (rewritten,
    unreadable). Unreadable values are left as they are. `model` may be a migration's."""
    rewritten = unreadable = 0
    rows = model.objects.filter(**{f"{field}__isnull": False}).values_list("pk", field)
    for pk, value in rows.iterator():
        if isinstance(value, UnreadableSecret):
            unreadable += 1
            continue
        model.objects.filter(pk=pk).update(**{field: value})  # saving encrypts with the first
        rewritten += 1
    return rewritten, unreadable
