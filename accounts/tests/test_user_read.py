"""The API authentication's read of a user and their active broker accounts (one statement,
written as SQL once): it loads what the ORM would, default account first."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import BrokerAccount, User
from accounts.selectors import user_with_broker_accounts

pytestmark = pytest.mark.django_db


def _fields(instance) -> dict:
    return {
        field.attname: getattr(instance, field.attname)
        for field in type(instance)._meta.concrete_fields
    }


def test_it_loads_the_user_and_the_active_accounts_as_the_orm_does_default_first(trader):
    User.objects.filter(pk=trader.pk).update(
        tokens_valid_after=timezone.now(), approval_notional=Decimal("2500.50")
    )
    paper = trader.broker_accounts.get()
    paper.is_default = False
    paper.save()
    alpaca = BrokerAccount.objects.create(
        user=trader,
        provider="alpaca",
        paper=False,
        label="Live",
        key_id="PKTESTKEY",
        secret="s3cr3t-value",  # encrypted at rest: loaded decrypted
        is_default=True,
        approval_notional=Decimal("100.25"),
    )
    BrokerAccount.objects.create(
        user=trader, provider="alpaca", paper=True, label="Gone", key_id="K2", is_active=False
    )
    with CaptureQueriesContext(connection) as captured:
        user = user_with_broker_accounts(trader.pk)
    assert len(captured.captured_queries) == 1
    assert _fields(user) == _fields(User.objects.get(pk=trader.pk))
    assert [_fields(account) for account in user.loaded_broker_accounts] == [
        _fields(BrokerAccount.objects.get(pk=pk)) for pk in (alpaca.pk, paper.pk)
    ]
    assert user.loaded_broker_accounts[0].secret == "s3cr3t-value"
    assert all(account.user is user for account in user.loaded_broker_accounts)
    assert user._active_when_loaded is True  # User.from_db's own work is done too


def test_a_user_without_an_active_account_comes_alone_and_no_user_is_none(trader):
    trader.broker_accounts.update(is_active=False, is_default=False)
    user = user_with_broker_accounts(trader.pk)
    assert user.pk == trader.pk and user.loaded_broker_accounts == []
    assert user_with_broker_accounts(trader.pk + 1000) is None
