"""Broker secrets at rest: FIELD_ENCRYPTION_KEY (rotatable), never ciphertext in place of a
secret, and an admin save that fails cannot change what later reads return."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.test import Client

from accounts import services
from accounts.encryption import UnreadableSecret, _legacy_key
from accounts.models import BrokerAccount
from tradedesk.api import exception_handler
from tradedesk.broker.errors import CredentialsUnreadable

pytestmark = pytest.mark.django_db

KEY_ID = "PKTESTKEY00000001234"
SECRET = "alpacaSecret0000000000000000000000000042"
OLD_KEY, NEW_KEY = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def stored_ciphertext(account: BrokerAccount) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM accounts_brokeraccount WHERE id = %s", [account.pk])
        return cursor.fetchone()[0]


def reloaded(account: BrokerAccount) -> BrokerAccount:
    return BrokerAccount.objects.get(pk=account.pk)


@pytest.fixture
def alpaca_account(trader, settings):
    settings.FIELD_ENCRYPTION_KEY = [OLD_KEY]
    return BrokerAccount.objects.create(
        user=trader, provider="alpaca", paper=True, label="Alpaca", key_id=KEY_ID, secret=SECRET
    )


def test_the_secret_is_stored_encrypted_with_the_first_key(alpaca_account):
    ciphertext = stored_ciphertext(alpaca_account)
    assert SECRET not in ciphertext
    assert Fernet(OLD_KEY.encode()).decrypt(ciphertext.encode()).decode() == SECRET
    assert reloaded(alpaca_account).secret == SECRET


def test_rotation_keeps_secrets_readable_and_the_command_reencrypts(alpaca_account, settings):
    settings.FIELD_ENCRYPTION_KEY = [NEW_KEY, OLD_KEY]
    assert reloaded(alpaca_account).secret == SECRET  # the old key still decrypts

    call_command("reencrypt_secrets")
    ciphertext = stored_ciphertext(alpaca_account)
    assert Fernet(NEW_KEY.encode()).decrypt(ciphertext.encode()).decode() == SECRET

    settings.FIELD_ENCRYPTION_KEY = [NEW_KEY]  # the old key can go now
    assert reloaded(alpaca_account).secret == SECRET


def test_secrets_from_before_the_setting_stay_readable_through_the_legacy_key(
    alpaca_account, settings
):
    """Rows the old library wrote (a key derived from SECRET_KEY and the salt) still decrypt,
    and the re-encryption (migration 0004, or the command) moves them to the new key."""
    legacy = Fernet(_legacy_key(settings.SECRET_KEY, "tradedesk-broker-secrets"))
    BrokerAccount.objects.filter(pk=alpaca_account.pk).update(secret=None)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounts_brokeraccount SET secret = %s WHERE id = %s",
            [legacy.encrypt(SECRET.encode()).decode(), alpaca_account.pk],
        )
    assert reloaded(alpaca_account).secret == SECRET
    assert services.reencrypt_broker_secrets() == (1, 0)
    settings.FIELD_ENCRYPTION_LEGACY_SALTS = []
    assert reloaded(alpaca_account).secret == SECRET


def test_a_secret_no_key_decrypts_is_an_error_never_the_ciphertext(alpaca_account, settings):
    settings.FIELD_ENCRYPTION_KEY = [NEW_KEY]  # the old key lost
    account = reloaded(alpaca_account)
    assert isinstance(account.secret, UnreadableSecret)
    assert account.secret_readable is False
    with pytest.raises(CredentialsUnreadable) as raised:
        services.credentials_for(account)
    assert raised.value.code == "broker_credentials_unreadable"
    response = exception_handler(raised.value, {})
    assert response.status_code == 503
    assert response.data["code"] == "broker_credentials_unreadable"
    # Saved back (any field), the stored ciphertext is kept, not overwritten.
    before = stored_ciphertext(account)
    account.label = "Renamed"
    account.save()
    assert stored_ciphertext(account) == before
    settings.FIELD_ENCRYPTION_KEY = [OLD_KEY]
    assert reloaded(account).secret == SECRET
    # The command leaves it alone and says so.
    settings.FIELD_ENCRYPTION_KEY = [NEW_KEY]
    assert services.reencrypt_broker_secrets() == (0, 1)


def test_the_trader_sees_the_unreadable_error_when_using_the_account(alpaca_account, settings, api):
    alpaca_account.is_default = False
    alpaca_account.save()
    settings.FIELD_ENCRYPTION_KEY = [NEW_KEY]
    response = api.get(f"/api/v1/account/?broker_account={alpaca_account.pk}")
    assert response.status_code == 503
    assert response.json()["code"] == "broker_credentials_unreadable"


@pytest.fixture
def admin_client(make_user):
    client = Client()
    client.force_login(make_user("operator", is_staff=True, is_superuser=True))
    return client


def test_a_failed_admin_save_does_not_poison_later_reads(alpaca_account, admin_client):
    """django-fernet-encrypted-fields 0.4.0 left its field "already decrypted" after a save whose
    validation failed: every later read in the process returned ciphertext."""
    url = f"/admin/accounts/brokeraccount/{alpaca_account.pk}/change/"
    response = admin_client.post(
        url,
        {
            "user": alpaca_account.user_id,
            "provider": "alpaca",
            "paper": "on",
            "label": "Alpaca",
            "key_id": "",
            "secret": "A" * 300,  # over the field's max_length: the save fails
            "is_active": "on",
        },
    )
    assert response.status_code == 200 and response.context["adminform"].form.errors
    assert reloaded(alpaca_account).secret == SECRET
    assert services.credentials_for(reloaded(alpaca_account)).secret == SECRET


def test_the_admin_change_form_shows_only_the_last_four_of_the_key_id(
    alpaca_account, admin_client, settings
):
    html = admin_client.get(f"/admin/accounts/brokeraccount/{alpaca_account.pk}/change/")
    text = html.content.decode()
    assert KEY_ID not in text and SECRET not in text
    assert KEY_ID[-4:] in text
    settings.FIELD_ENCRYPTION_KEY = [NEW_KEY]
    text = admin_client.get(f"/admin/accounts/brokeraccount/{alpaca_account.pk}/change/")
    assert "broker_credentials_unreadable" in text.content.decode()


def test_an_admin_save_with_an_empty_key_id_keeps_the_stored_one(alpaca_account, admin_client):
    response = admin_client.post(
        f"/admin/accounts/brokeraccount/{alpaca_account.pk}/change/",
        {
            "user": alpaca_account.user_id,
            "provider": "alpaca",
            "paper": "on",
            "label": "Renamed",
            "key_id": "",
            "secret": "",
            "is_active": "on",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    account = reloaded(alpaca_account)
    assert (account.label, account.key_id, account.secret) == ("Renamed", KEY_ID, SECRET)


def test_the_brokers_page_tells_the_trader_a_secret_is_unreadable(alpaca_account, settings):
    browser = Client()
    browser.force_login(alpaca_account.user)
    assert "broker_credentials_unreadable" not in browser.get("/accounts/brokers/").content.decode()
    settings.FIELD_ENCRYPTION_KEY = [NEW_KEY]
    page = browser.get("/accounts/brokers/").content.decode()
    assert "The stored secret cannot be read (broker_credentials_unreadable)" in page
