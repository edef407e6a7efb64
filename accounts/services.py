"""Users and broker accounts: registration, the paper account, linking and unlinking;
revocation of a user's sessions and tokens; the stream-only token."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.cache import cache
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from tradedesk.broker import Broker, BrokerCredentials, get_broker
from tradedesk.broker.errors import (
    AuthenticationFailed,
    BrokerError,
    BrokerUnavailable,
    CredentialsUnreadable,
)
from tradedesk.broker.sim.exchange import open_account

from .encryption import UnreadableSecret, reencrypt_column
from .models import BrokerAccount, User

# Sent (user_id=...) after a revocation commits; the stream closes the user's connections
# (market.apps connects it: accounts is the ground floor and cannot call the stream).
sessions_revoked = Signal()

PAPER_ACCOUNT_LABEL = "Paper exchange"


@dataclass
class LinkError(Exception):
    code: str
    field: str
    message: str


def credentials_for(account: BrokerAccount) -> BrokerCredentials:
    """The account's credentials; CredentialsUnreadable when its secret cannot be decrypted
    (never the ciphertext in its place)."""
    if isinstance(account.secret, UnreadableSecret):
        raise CredentialsUnreadable()
    return BrokerCredentials(
        provider=account.provider,
        paper=account.paper,
        key_id=account.key_id,
        secret=account.secret or "",
    )


def reencrypt_broker_secrets() -> tuple[int, int]:
    """Every stored broker secret re-encrypted with the first FIELD_ENCRYPTION_KEY:
    (rewritten, unreadable)."""
    return reencrypt_column(BrokerAccount, "secret")


def broker_for(account: BrokerAccount) -> Broker:
    return get_broker(credentials_for(account))


@transaction.atomic
def ensure_paper_account(user: User) -> BrokerAccount:
    """Give a user with no broker account a funded paper-exchange account, as their default."""
    existing = user.broker_accounts.filter(is_active=True).order_by("-is_default", "id").first()
    if existing is not None:
        return existing
    return BrokerAccount.objects.create(
        user=user,
        provider=BrokerAccount.PROVIDER_SIM,
        paper=True,
        label=PAPER_ACCOUNT_LABEL,
        key_id=open_account(),
        is_default=True,
    )


@transaction.atomic
def register_user(*, username: str, password: str, email: str = "") -> User:
    user = User(username=username, email=email)
    validate_password(password, user)
    user.set_password(password)
    user.save()
    ensure_paper_account(user)
    return user


def link_broker_account(
    *,
    user: User,
    provider: str,
    label: str,
    paper: bool,
    key_id: str = "",
    secret: str = "",
    is_default: bool = False,
    confirm_live: bool = False,
) -> BrokerAccount:
    """Verify the credentials with the broker, then store them (the secret encrypted)."""
    if provider == BrokerAccount.PROVIDER_SIM:
        if not paper:
            raise LinkError("paper_only", "paper", "The paper exchange has no live accounts.")
        key_id, secret = open_account(), ""
    elif provider == BrokerAccount.PROVIDER_ALPACA:
        if not key_id or not secret:
            field = "key_id" if not key_id else "secret"
            raise LinkError("required", field, "Alpaca accounts need a key id and a secret.")
        validate_alpaca_keys(key_id=key_id, secret=secret)
        if not paper and not confirm_live:
            raise LinkError(
                "live_confirmation_required",
                "confirm_live",
                "Linking a live account places real orders: confirm it explicitly.",
            )
        credentials = BrokerCredentials(
            provider=provider, paper=paper, key_id=key_id, secret=secret
        )
        try:
            get_broker(credentials).get_account()
        except AuthenticationFailed:
            raise LinkError("invalid_credentials", "key_id", "Alpaca refused these keys.") from None
        except BrokerUnavailable:
            raise
        except BrokerError as exc:
            raise LinkError("verification_failed", "key_id", exc.message) from None
    else:
        raise LinkError("invalid_choice", "provider", f"Unknown provider {provider!r}.")

    with transaction.atomic():
        has_default = user.broker_accounts.filter(is_active=True, is_default=True).exists()
        make_default = is_default or not has_default
        if make_default:
            user.broker_accounts.filter(is_default=True).update(is_default=False)
        return BrokerAccount.objects.create(
            user=user,
            provider=provider,
            paper=paper,
            label=label,
            key_id=key_id,
            secret=secret,
            is_default=make_default,
        )


# Alpaca's key ids are 20 upper-case letters and digits (PK…, AK…), its secrets 40 letters and
# digits; the ranges leave room for format changes. Checked before any broker call: both go out
# as HTTP header values, and anything else (a control character, non-Latin-1) broke the request.
ALPACA_KEY_ID_RE = re.compile(r"[A-Z0-9]{16,40}")
ALPACA_SECRET_RE = re.compile(r"[A-Za-z0-9]{32,88}")


def validate_alpaca_keys(*, key_id: str | None = None, secret: str | None = None) -> None:
    """LinkError naming the field when a given key id or secret cannot be Alpaca's."""
    if key_id is not None and not ALPACA_KEY_ID_RE.fullmatch(key_id):
        raise LinkError(
            "invalid_key_id",
            "key_id",
            "An Alpaca key id is 16 to 40 upper-case letters and digits (e.g. PK… or AK…).",
        )
    if secret is not None and not ALPACA_SECRET_RE.fullmatch(secret):
        raise LinkError(
            "invalid_secret", "secret", "An Alpaca secret is 32 to 88 letters and digits."
        )


@transaction.atomic
def set_default_broker_account(account: BrokerAccount) -> None:
    account.user.broker_accounts.filter(is_default=True).update(is_default=False)
    account.is_default = True
    account.save(update_fields=["is_default"])


@transaction.atomic
def unlink_broker_account(account: BrokerAccount) -> None:
    """Deactivate the account (its orders stay in history); another one becomes the default."""
    was_default = account.is_default
    account.is_active = False
    account.is_default = False
    account.save(update_fields=["is_active", "is_default"])
    if was_default:
        successor = account.user.broker_accounts.filter(is_active=True).order_by("id").first()
        if successor is not None:
            set_default_broker_account(successor)


# --- revocation ---------------------------------------------------------------------------
def revoke_sessions(user: User) -> None:
    """End every session, refresh token, access token and open stream of the user, at once.

    Access tokens cannot be recalled, so the user's `tokens_valid_after` refuses those issued
    before now (checked where the user is loaded anyway: no extra query); the same field is in
    the session auth hash, which logs every session out; outstanding refresh tokens are
    blacklisted; and after the commit the stream closes the user's connections with 1008.
    """
    now = timezone.now()
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(tokens_valid_after=now)
        user.tokens_valid_after = now
        outstanding = OutstandingToken.objects.filter(
            user=user, expires_at__gt=now, blacklistedtoken__isnull=True
        )
        BlacklistedToken.objects.bulk_create(
            [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
        )
    user_id = user.pk
    transaction.on_commit(lambda: sessions_revoked.send(sender=User, user_id=user_id))


def revoke_on_change(sender, instance: User, created: bool, **kwargs) -> None:
    """post_save of a User: a password change (set_password, then save: the pages, admin, any
    API) or a deactivation revokes everything. A hash upgrade at login (Django clears the
    pending password before saving) and a new user do not."""
    if created:
        return
    password_changed = instance._password is not None
    deactivated = not instance.is_active and getattr(instance, "_active_when_loaded", False)
    instance._active_when_loaded = instance.is_active
    if password_changed or deactivated:
        revoke_sessions(instance)


def token_revoked(user: User, issued_at: int) -> bool:
    """Whether a token issued at `issued_at` (its `iat`, whole seconds) predates the user's last
    revocation. The whole second of the revocation counts as before it: a token from that
    second may predate it (a fresh login in that one second must log in again)."""
    valid_after = user.tokens_valid_after
    return valid_after is not None and issued_at <= int(valid_after.timestamp())


def still_unrevoked(user: User) -> bool:
    """Whether the user is active and not revoked since `user` was loaded (a stream checks it
    once it listens for revocations, so one landing in between is not missed)."""
    row = User.objects.filter(pk=user.pk, is_active=True).values("tokens_valid_after").first()
    return row is not None and row["tokens_valid_after"] == user.tokens_valid_after


def log_out(*, refresh: str) -> None:
    """Blacklist one refresh token (an API client's logout); TokenError if it is not valid."""
    RefreshToken(refresh).blacklist()


# --- the stream-only token ------------------------------------------------------------------
class StreamToken(AccessToken):
    """Opens the stream and nothing else: the API's authentication accepts only "access"
    tokens, so a stream token leaked from a URL cannot place orders. Short-lived (it only has
    to connect), and single use."""

    token_type = "stream"
    lifetime = timedelta(seconds=settings.STREAM_TOKEN_SECONDS)


def stream_token_for(user: User) -> str:
    return str(StreamToken.for_user(user))


def stream_token_user(raw_token: str) -> tuple[User, datetime] | None:
    """The active, unrevoked user of a stream or access token, and until when the connection it
    opens may live; None when the token is not valid. A stream token counts once; the
    connection it opens lives as long as one opened with an access token."""
    token = None
    for token_class in (StreamToken, AccessToken):
        try:
            token = token_class(raw_token)
            break
        except TokenError:
            continue
    if token is None:
        return None
    user = User.objects.filter(pk=token.get(jwt_settings.USER_ID_CLAIM), is_active=True).first()
    if user is None or token_revoked(user, token["iat"]):
        return None
    if isinstance(token, StreamToken):
        used_key = f"stream-token-used:{token[jwt_settings.JTI_CLAIM]}"
        if not cache.add(used_key, 1, int(token.lifetime.total_seconds()) + 1):
            return None
        expires_at = timezone.now() + AccessToken.lifetime
    else:
        expires_at = datetime.fromtimestamp(token["exp"], tz=UTC)
    return user, expires_at
