from __future__ import annotations

import functools

from django.db import connection
from django.http import Http404

from tradedesk import rows
from tradedesk.rows import quoted

from .models import BrokerAccount, User

_ACCOUNT_ORDER = ("-is_default", "id")


def active_broker_accounts(user: User):
    return user.broker_accounts.filter(is_active=True).order_by(*_ACCOUNT_ORDER)


@functools.cache
def _user_and_accounts_sql() -> str:
    users, accounts = (quoted(model._meta.db_table) for model in (User, BrokerAccount))
    return (
        f"SELECT {rows.shape(User).columns('u')}, {rows.shape(BrokerAccount).columns('b')}"  # noqa: S608
        f" FROM {users} u LEFT JOIN {accounts} b"
        f" ON b.{quoted('user_id')} = u.{quoted('id')} AND b.{quoted('is_active')} = %s"
        f" WHERE u.{quoted('id')} = %s"
        f" ORDER BY b.{quoted('is_default')} DESC, b.{quoted('id')}"  # _ACCOUNT_ORDER
    )


def user_with_broker_accounts(user_id: object) -> User | None:
    """The user and their active broker accounts, default first, in one read (the API's
    authentication: an order command needs both); None for no such user. The accounts are
    what broker_account_for picks from for this user object. Written as SQL once: the ORM's
    building of the join cost more than the rest of the authentication."""
    user_shape, account_shape = rows.shape(User), rows.shape(BrokerAccount)
    found = rows.fetch(
        _user_and_accounts_sql(), [True, User._meta.pk.get_db_prep_value(user_id, connection)]
    )
    if not found:
        return None
    user = user_shape.load(found[0])
    accounts = [
        account
        for row in found
        if (account := account_shape.load(row, user_shape.width)) is not None
    ]
    for account in accounts:
        account.user = user
    user.loaded_broker_accounts = accounts
    return user


def _loaded(user: User) -> list[BrokerAccount] | None:
    return getattr(user, "loaded_broker_accounts", None)


def default_broker_account(user: User) -> BrokerAccount:
    """The user's default account (the services keep every user with one: a paper account
    opened at creation and when the last account is unlinked)."""
    loaded = _loaded(user)
    if loaded is not None:
        account = loaded[0] if loaded else None
    else:
        account = active_broker_accounts(user).first()
    if account is None:
        raise Http404("No broker account: link one on /accounts/brokers/.")
    return account


def broker_account_for(user: User, account_id: object | None) -> BrokerAccount:
    """The caller's own active account by id (404 for anyone else's), or their default."""
    if account_id in (None, ""):
        return default_broker_account(user)
    try:
        pk = int(str(account_id))
        loaded = _loaded(user)
        if loaded is None:
            return active_broker_accounts(user).get(pk=pk)
        return next(account for account in loaded if account.pk == pk)
    except (BrokerAccount.DoesNotExist, StopIteration, ValueError, OverflowError):
        raise Http404("No such broker account.") from None
