"""Users and broker accounts: registration, the paper account, linking and unlinking;
sign-in security: the brute-force and signup limits, two-factor authentication, allowlists;
revocation of a user's sessions and tokens; the stream-only token."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import math
from base64 import b32encode
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import django_otp
import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.exceptions import PermissionDenied
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from tradedesk import ratelimit
from tradedesk.broker import (
    Broker,
    BrokerCredentials,
    desk_opens_accounts,
    get_broker,
    key_problem,
    open_paper_account,
)
from tradedesk.broker.errors import (
    AuthenticationFailed,
    BrokerError,
    BrokerUnavailable,
    CredentialsUnreadable,
)
from tradedesk.client_ip import IPNetwork, parse_address, parse_networks

from .encryption import UnreadableSecret, reencrypt_column
from .models import BrokerAccount, User, allowlist_entries, validate_allowlist

logger = logging.getLogger(__name__)

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
    opened = open_paper_account()
    return BrokerAccount.objects.create(
        user=user,
        provider=opened.provider,
        paper=opened.paper,
        label=PAPER_ACCOUNT_LABEL,
        key_id=opened.key_id,
        is_default=True,
    )


def open_paper_account_on_creation(sender, instance: User, created: bool, **kwargs) -> None:
    """post_save of a User: a new user (signup, admin, createsuperuser) gets a funded paper
    account, so every user always has a default broker account to read."""
    if created:
        ensure_paper_account(instance)


@transaction.atomic
def register_user(*, username: str, password: str, email: str = "") -> User:
    """A new user, with a funded paper account (opened as the user is saved)."""
    user = User(username=username, email=email)
    validate_password(password, user)
    user.set_password(password)
    user.save()
    return user


def sign_up(*, username: str, password: str, email: str = "", address: str) -> User:
    """Self-service registration: at most SIGNUP_RATE new accounts per client address."""
    ratelimit.hit("signup", address_key(address), settings.SIGNUP_RATE)
    return register_user(username=username, password=password, email=email)


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
    try:
        opened_by_desk = desk_opens_accounts(provider)
    except ValueError:
        raise LinkError("invalid_choice", "provider", f"Unknown provider {provider!r}.") from None
    if opened_by_desk:
        if not paper:
            raise LinkError("paper_only", "paper", "The paper exchange has no live accounts.")
        key_id, secret = open_paper_account().key_id, ""
    else:
        if not key_id or not secret:
            field = "key_id" if not key_id else "secret"
            raise LinkError("required", field, "Alpaca accounts need a key id and a secret.")
        validate_broker_keys(provider=provider, key_id=key_id, secret=secret)
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


def validate_broker_keys(*, provider: str, key_id: str | None, secret: str | None) -> None:
    """LinkError naming the field when a given key id or secret cannot be the provider's
    (checked before any broker call; a None is not judged)."""
    problem = key_problem(provider, key_id=key_id, secret=secret)
    if problem is not None:
        raise LinkError(problem.code, problem.field, problem.message)


@transaction.atomic
def set_default_broker_account(account: BrokerAccount) -> None:
    account.user.broker_accounts.filter(is_default=True).update(is_default=False)
    account.is_default = True
    account.save(update_fields=["is_default"])


@transaction.atomic
def unlink_broker_account(account: BrokerAccount) -> None:
    """Deactivate the account (its orders stay in history); another one becomes the default,
    and a user who unlinks the last one gets a fresh paper account (never none)."""
    was_default = account.is_default
    account.is_active = False
    account.is_default = False
    account.save(update_fields=["is_active", "is_default"])
    if was_default:
        successor = account.user.broker_accounts.filter(is_active=True).order_by("id").first()
        if successor is None:
            ensure_paper_account(account.user)
        else:
            set_default_broker_account(successor)


# --- Sign-in security ---------------------------------------------------------------------
INVALID_CREDENTIALS = "invalid_credentials"
ADDRESS_NOT_ALLOWED = "address_not_allowed"
OTP_REQUIRED = "otp_required"
OTP_INVALID = "otp_invalid"
OTP_ENROLMENT_REQUIRED = "otp_enrolment_required"
# Set on the refresh token (and so on every access token made from it) issued after a code.
SECOND_FACTOR_CLAIM = "otp_verified"
RECOVERY_CODE_COUNT = 10


class LoginRefused(Exception):
    """A login that must not go through: `code` says why, `status` is the HTTP answer."""

    def __init__(self, code: str, message: str, status: int = 401):
        self.code, self.message, self.status = code, message, status
        super().__init__(message)


class SecondFactorNeeded(LoginRefused):
    """The password was right; the user's code is still to come (the pages ask for it next)."""

    def __init__(self, user: User):
        self.user = user
        super().__init__(OTP_REQUIRED, "Enter the code from your authenticator app.")


class SecondFactorRequired(PermissionDenied):
    """A 403 with a code: the API renders it as is, the pages' middleware sends to enrolment."""

    def __init__(self, code: str, message: str):
        self.code, self.message = code, message
        super().__init__({"detail": message, "code": code})


class AddressNotAllowed(PermissionDenied):
    code = ADDRESS_NOT_ALLOWED
    message = "Your account cannot be used from this network address."

    def __init__(self):
        super().__init__({"detail": self.message, "code": self.code})


@dataclass(frozen=True)
class Login:
    user: User
    # The second factor that verified this login; None when the user has none.
    device: Device | None
    # Required (by setting or operator) but not enrolled: pages send to enrol, the API refuses.
    must_enrol: bool


def address_key(address: str) -> str:
    """The key one client address is counted under: an IPv6 host owns a whole /64."""
    parsed = parse_address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed) if parsed is not None else "unknown"


def _username_key(username: str) -> str:
    # Hashed: a username may hold anything, and cache keys may not.
    return hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _username_rule(username: str) -> tuple[str, str, str]:
    return ("login:username", _username_key(username), settings.LOGIN_FAILURES_PER_USERNAME)


def _address_rule(address: str) -> tuple[str, str, str]:
    return ("login:address", address_key(address), settings.LOGIN_FAILURES_PER_ADDRESS)


def _limit_login_attempt(username: str, address: str) -> None:
    """Before the password or code is tried: refuse when either limit is used up.

    The username's attempt is counted now, atomically (a success resets it), so a burst of
    simultaneous guesses gets exactly the limit through, not one per worker that checked
    before any failure was counted; the address's counts failures only, so an office behind
    one address isn't locked out by its own successful logins.
    """
    try:
        # The address first: a client over its own limit must not use up the username's.
        ratelimit.check(*_address_rule(address))
        ratelimit.hit(*_username_rule(username))
    except ratelimit.RateLimitExceeded as limited:
        wait = limited.retry_after
        logger.warning("login refused (rate limited) for %r from %s", username, address)
        raise ratelimit.RateLimitExceeded(
            limited.scope,
            wait,
            f"Too many failed logins; try again in {wait} second{'' if wait == 1 else 's'}.",
        ) from None


def _login_failed(username: str, address: str, code: str) -> None:
    logger.warning("login refused (%s) for %r from %s", code, username, address)
    # Counted even past the limit; the next attempt's check is what refuses.
    with contextlib.suppress(ratelimit.RateLimitExceeded):
        ratelimit.hit(*_address_rule(address))


def _login_succeeded(username: str) -> None:
    # The username's count only: the address's stays, or a valid login of an attacker's own
    # account would wipe the count of their guesses at other usernames.
    ratelimit.reset(*_username_rule(username))


def authenticate_login(*, username: str, password: str, otp: str, address: str) -> Login:
    """Every login door (the login page, the token endpoint): the brute-force limits, the
    allowlist, the password, then the second factor when the user has one.

    Raises ratelimit.RateLimitExceeded (even for the right password), LoginRefused, or
    SecondFactorNeeded when the password was right and no code came with it.
    """
    named = User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()
    # From outside a user's allowlist, not even the password is tried (nor counted).
    if named is not None and not address_allowed(named, address):
        raise LoginRefused(ADDRESS_NOT_ALLOWED, AddressNotAllowed.message, status=403)
    _limit_login_attempt(username, address)
    user = authenticate(username=username, password=password)
    if user is None:
        _login_failed(username, address, INVALID_CREDENTIALS)
        raise LoginRefused(
            INVALID_CREDENTIALS, "Your username and password didn't match. Please try again."
        )
    if not has_second_factor(user):
        _login_succeeded(username)
        return Login(user=user, device=None, must_enrol=second_factor_required(user))
    if not otp:
        raise SecondFactorNeeded(user)
    return _check_code(user, otp, address)  # one attempt: counted above


def authenticate_second_factor(*, user: User, otp: str, address: str) -> Login:
    """The login page's second step, for a user whose password was right: a TOTP or a
    recovery code, under the same brute-force limits as the password."""
    _limit_login_attempt(user.get_username(), address)
    return _check_code(user, otp, address)


def _check_code(user: User, otp: str, address: str) -> Login:
    device = verify_second_factor(user, otp)
    if device is None:
        _login_failed(user.get_username(), address, OTP_INVALID)
        raise LoginRefused(OTP_INVALID, _wrong_code_message(user))
    _login_succeeded(user.get_username())
    return Login(user=user, device=device, must_enrol=False)


# Two-factor policy ---------------------------------------------------------------------------
def has_second_factor(user: User) -> bool:
    return TOTPDevice.objects.devices_for_user(user, confirmed=True).exists()


def second_factor_required(user: User) -> bool:
    """Must this user log in with a second factor (TWO_FACTOR_REQUIRED, or the operator's flag)?"""
    mode = settings.TWO_FACTOR_REQUIRED
    if user.two_factor_required or mode == "all":
        return True
    if mode == "live":
        return user.broker_accounts.filter(is_active=True, paper=False).exists()
    return False


def refusal_for_missing_second_factor(user: User) -> SecondFactorRequired:
    if has_second_factor(user):
        return SecondFactorRequired(
            OTP_REQUIRED, "Log in again with the code from your authenticator app."
        )
    return SecondFactorRequired(
        OTP_ENROLMENT_REQUIRED,
        "Two-factor authentication is required: set it up on /accounts/security/.",
    )


def require_second_factor_for_orders(user: User, *, verified: bool) -> None:
    """Placing an order needs a second-factor-verified session or token wherever 2FA is
    required, and for everyone when TWO_FACTOR_REQUIRED=orders. Raises SecondFactorRequired."""
    if verified:
        return
    if settings.TWO_FACTOR_REQUIRED == "orders" or second_factor_required(user):
        raise refusal_for_missing_second_factor(user)


# Enrolment ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Enrolment:
    device: TOTPDevice

    @property
    def secret(self) -> str:
        """The key as authenticator apps take it when typed: base32, in groups of four."""
        text = b32encode(self.device.bin_key).decode()
        return " ".join(text[i : i + 4] for i in range(0, len(text), 4))

    @property
    def qr_svg(self) -> str:
        """The otpauth:// URL as an inline SVG QR code (no image service involved)."""
        image = qrcode.make(
            self.device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8
        )
        return image.to_string(encoding="unicode")


def start_enrolment(user: User) -> Enrolment:
    """The user's pending (unconfirmed) authenticator: one at a time, kept until confirmed."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("id").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    return Enrolment(device=device)


@transaction.atomic
def confirm_enrolment(*, user: User, otp: str) -> tuple[TOTPDevice, list[str]]:
    """Confirm the pending authenticator with a code from it; returns it and the recovery
    codes, which are shown this once. LoginRefused(otp_invalid) for a wrong code."""
    device = (
        TOTPDevice.objects.select_for_update()
        .filter(user=user, confirmed=False)
        .order_by("id")
        .first()
    )
    if device is None or not device.verify_token(_normal_code(otp)):
        raise LoginRefused(OTP_INVALID, _wrong_code_message(user))
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    StaticDevice.objects.filter(user=user).delete()
    recovery = StaticDevice.objects.create(user=user, name="Recovery codes", confirmed=True)
    codes = [_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create(StaticToken(device=recovery, token=code) for code in codes)
    return device, codes


def _recovery_code() -> str:
    # Never all digits: digits are read as an authenticator's code (verify_second_factor).
    code = StaticToken.random_token()
    return code if not code.isdigit() else _recovery_code()


def disable_second_factor(*, user: User, otp: str) -> None:
    """Remove the user's authenticator and recovery codes, with a code from either."""
    if second_factor_required(user):
        raise LoginRefused(
            OTP_ENROLMENT_REQUIRED,
            "Two-factor authentication is required for your account; it cannot be turned off.",
            status=403,
        )
    if verify_second_factor(user, otp) is None:
        raise LoginRefused(OTP_INVALID, _wrong_code_message(user))
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()


def _wrong_code_message(user: User) -> str:
    """django-otp makes a device wait after each wrong code (doubling): say so, or the right
    code typed too soon would look wrong."""
    device = TOTPDevice.objects.filter(user=user).first()
    allowed, details = device.verify_is_allowed() if device else (True, None)
    if not allowed and details and details.get("locked_until"):
        wait = max(1, math.ceil((details["locked_until"] - timezone.now()).total_seconds()))
        return f"Too many wrong codes; try again in {wait} second{'' if wait == 1 else 's'}."
    return "That code is wrong or has expired."


def _normal_code(otp: str) -> str:
    # As people type them: "123 456", "ABCD-EFGH"; recovery codes are stored lower case.
    return "".join(otp.split()).replace("-", "").lower()[:32]


def verify_second_factor(user: User, otp: str) -> Device | None:
    """The user's confirmed device that accepts `otp`, or None: digits go to the authenticator,
    anything else to the recovery codes (each used up by its first use). django-otp makes a
    device wait after wrong codes and refuses a TOTP code already used."""
    code = _normal_code(otp)
    if not code:
        return None
    model = TOTPDevice if code.isdigit() else StaticDevice
    for device in model.objects.devices_for_user(user, confirmed=True):
        verified = django_otp.verify_token(user, device.persistent_id, code)
        if verified is not None:
            return verified
    return None


# Allowlists ------------------------------------------------------------------------------------
def allowlist_networks(text: str) -> list[IPNetwork]:
    return parse_networks(allowlist_entries(text))


def address_in_allowlist(text: str, address: str) -> bool:
    """Is `address` in the allowlist written as `text` (empty: everywhere is allowed)?
    Users have one; the gateway's API keys take the same."""
    if not text.strip():
        return True
    parsed = parse_address(address)
    return parsed is not None and any(
        parsed.version == network.version and parsed in network
        for network in allowlist_networks(text)
    )


def address_allowed(user: User, address: str) -> bool:
    """May `user` use the desk from `address`? Every door asks this (and a refusal is logged)."""
    if address_in_allowlist(user.ip_allowlist, address):
        return True
    logger.warning("%s: user %s from %s", ADDRESS_NOT_ALLOWED, user.pk, address or "(unknown)")
    return False


def set_ip_allowlist(*, user: User, text: str, current_address: str) -> User:
    """Replace the user's allowlist (normalised, one network a line). ValidationError for a
    bad entry, or for a list that leaves out the address the user is on now (a lock-out)."""
    validate_allowlist(text)
    normalised = "\n".join(str(network) for network in allowlist_networks(text))
    if not address_in_allowlist(normalised, current_address):
        raise ValidationError(
            f"Your current address {current_address or '(unknown)'} is not in this list: "
            "saving it would lock you out.",
            code="locks_you_out",
        )
    user.ip_allowlist = normalised
    user.save(update_fields=["ip_allowlist"])
    return user


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
