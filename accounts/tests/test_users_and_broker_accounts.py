"""Users and their broker accounts: the custom user, the funded paper account, one default,
and broker secrets encrypted at rest."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.db.migrations.loader import MigrationLoader

from accounts.models import BrokerAccount, User
from accounts.selectors import default_broker_account
from accounts.services import (
    broker_for,
    ensure_paper_account,
    register_user,
    unlink_broker_account,
)

pytestmark = pytest.mark.django_db

SECRET = "sk-live-plaintext-marker-7Qx2"


def test_the_user_model_is_the_desks_own_from_the_first_migration():
    assert get_user_model() is User
    initial = MigrationLoader(None, ignore_no_migrations=True).get_migration(
        "accounts", "0001_initial"
    )
    created = [op.name for op in initial.operations if type(op).__name__ == "CreateModel"]
    assert created[0] == "User"


def test_a_new_user_gets_exactly_one_funded_paper_account_as_default(make_user):
    user = make_user("newcomer")
    [account] = BrokerAccount.objects.filter(user=user)
    assert (account.provider, account.paper, account.is_default, account.is_active) == (
        "sim",
        True,
        True,
        True,
    )
    info = broker_for(account).get_account()
    assert info.cash == info.equity == Decimal("100000.00")
    assert info.status == "ACTIVE"


def test_each_new_user_gets_a_separate_paper_account(trader, other_trader):
    assert default_broker_account(trader).key_id != default_broker_account(other_trader).key_id


def test_a_user_created_outside_signup_has_a_paper_account_too(db):
    operator = User.objects.create_superuser("ops", password="s3cret-Passw0rd!")

    account = default_broker_account(operator)

    assert (account.provider, account.paper, account.is_default) == ("sim", True, True)


def test_unlinking_the_last_account_leaves_a_fresh_paper_account(trader):
    first = default_broker_account(trader)

    unlink_broker_account(first)

    replacement = default_broker_account(trader)
    assert replacement.pk != first.pk
    assert (replacement.provider, replacement.is_default, replacement.is_active) == (
        "sim",
        True,
        True,
    )


def test_ensure_paper_account_is_idempotent(trader):
    first = default_broker_account(trader)
    assert ensure_paper_account(trader) == first
    assert BrokerAccount.objects.filter(user=trader).count() == 1


def test_registration_enforces_the_password_rules_and_creates_nothing(db):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        register_user(username="weak", password="123")
    assert not User.objects.filter(username="weak").exists()
    assert not BrokerAccount.objects.exists()


def test_the_database_allows_one_default_account_per_user(trader):
    with pytest.raises(IntegrityError), transaction.atomic():
        BrokerAccount.objects.create(
            user=trader, provider="sim", label="Second", key_id="x", is_default=True
        )
    # An unlinked (inactive) account may keep its flag without clashing.
    BrokerAccount.objects.create(
        user=trader, provider="sim", label="Old", key_id="y", is_default=True, is_active=False
    )
    assert BrokerAccount.objects.filter(user=trader, is_default=True, is_active=True).count() == 1


def test_the_database_rejects_an_unknown_provider(trader):
    with pytest.raises(IntegrityError), transaction.atomic():
        BrokerAccount.objects.create(user=trader, provider="etrade", label="x", key_id="k")


def test_the_broker_secret_is_encrypted_at_rest(trader):
    account = BrokerAccount.objects.create(
        user=trader, provider="alpaca", label="Alpaca", key_id="PK123456", secret=SECRET
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT secret FROM {BrokerAccount._meta.db_table} WHERE id = %s",
            [account.pk],
        )
        [raw] = cursor.fetchone()
    raw_text = raw.decode() if isinstance(raw, bytes | memoryview) else str(raw)
    assert raw_text
    assert SECRET not in raw_text
    assert BrokerAccount.objects.get(pk=account.pk).secret == SECRET


def test_only_the_last_four_of_the_key_id_are_exposed(trader):
    account = BrokerAccount(user=trader, provider="alpaca", label="A", key_id="PKABCDEFG1234")
    assert account.key_id_last4 == "1234"
