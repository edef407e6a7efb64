"""Users and broker accounts: registration, the paper account, linking and unlinking."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.password_validation import validate_password
from django.db import transaction

from tradedesk.broker import (
    Broker,
    BrokerCredentials,
    desk_opens_accounts,
    get_broker,
    open_paper_account,
)
from tradedesk.broker.errors import AuthenticationFailed, BrokerError, BrokerUnavailable

from .models import BrokerAccount, User

PAPER_ACCOUNT_LABEL = "Paper exchange"


@dataclass
class LinkError(Exception):
    code: str
    field: str
    message: str


def credentials_for(account: BrokerAccount) -> BrokerCredentials:
    return BrokerCredentials(
        provider=account.provider,
        paper=account.paper,
        key_id=account.key_id,
        secret=account.secret or "",
    )


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
