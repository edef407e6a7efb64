from __future__ import annotations

from django.http import Http404

from .models import BrokerAccount, User
from .services import ensure_paper_account


def active_broker_accounts(user: User):
    return user.broker_accounts.filter(is_active=True).order_by("-is_default", "id")


def default_broker_account(user: User) -> BrokerAccount:
    account = active_broker_accounts(user).first()
    return account if account is not None else ensure_paper_account(user)


def broker_account_for(user: User, account_id: object | None) -> BrokerAccount:
    """The caller's own active account by id (404 for anyone else's), or their default."""
    if account_id in (None, ""):
        return default_broker_account(user)
    try:
        return active_broker_accounts(user).get(pk=int(str(account_id)))
    except (BrokerAccount.DoesNotExist, ValueError, OverflowError):
        raise Http404("No such broker account.") from None
