from __future__ import annotations

from django.http import Http404

from .models import BrokerAccount, User


def active_broker_accounts(user: User):
    return user.broker_accounts.filter(is_active=True).order_by("-is_default", "id")


def default_broker_account(user: User) -> BrokerAccount:
    """The user's default account (the services keep every user with one: a paper account
    opened at creation and when the last account is unlinked)."""
    account = active_broker_accounts(user).first()
    if account is None:
        raise Http404("No broker account: link one on /accounts/brokers/.")
    return account


def broker_account_for(user: User, account_id: object | None) -> BrokerAccount:
    """The caller's own active account by id (404 for anyone else's), or their default."""
    if account_id in (None, ""):
        return default_broker_account(user)
    try:
        return active_broker_accounts(user).get(pk=int(str(account_id)))
    except (BrokerAccount.DoesNotExist, ValueError, OverflowError):
        raise Http404("No such broker account.") from None
