"""`manage.py bootstrap_demo`: the demo trader and the admin for the embedded run."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from accounts.models import BrokerAccount, User

pytestmark = pytest.mark.django_db


def bootstrap() -> str:
    out = io.StringIO()
    call_command("bootstrap_demo", stdout=out)
    return out.getvalue()


def printed_logins(output: str) -> dict[str, tuple[str, str]]:
    found = re.findall(r"(Demo trader|Admin):\s+(\S+) / (.+)", output)
    return {role: (username, password.strip()) for role, username, password in found}


def test_creates_the_demo_trader_and_admin_and_prints_their_logins(monkeypatch, settings):
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    monkeypatch.delenv("DJANGO_SUPERUSER_USERNAME", raising=False)
    logins = printed_logins(bootstrap())
    trader_name, trader_password = logins["Demo trader"]
    admin_name, admin_password = logins["Admin"]
    assert (trader_name, trader_password) == (
        settings.DEMO_TRADER_USERNAME,
        settings.DEMO_TRADER_PASSWORD,
    )
    trader = authenticate(username=trader_name, password=trader_password)
    admin = authenticate(username=admin_name, password=admin_password)
    assert trader is not None and not trader.is_staff
    assert admin is not None and admin.is_staff and admin.is_superuser
    for user in (trader, admin):
        assert BrokerAccount.objects.filter(user=user, provider="sim", is_default=True).count() == 1


def test_is_idempotent_and_keeps_the_admin_password_unless_told(monkeypatch):
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    monkeypatch.delenv("DJANGO_SUPERUSER_USERNAME", raising=False)
    first_password = printed_logins(bootstrap())["Admin"][1]
    second = bootstrap()
    assert "(unchanged; set DJANGO_SUPERUSER_PASSWORD to reset it)" in second
    assert User.objects.count() == 2
    assert BrokerAccount.objects.count() == 2
    assert authenticate(username="admin", password=first_password) is not None
    assert authenticate(username="trader", password=printed_logins(second)["Demo trader"][1])


def test_django_superuser_password_sets_the_admins_password(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "chosen-admin-pw-1")
    monkeypatch.delenv("DJANGO_SUPERUSER_USERNAME", raising=False)
    bootstrap()
    assert printed_logins(bootstrap())["Admin"] == ("admin", "chosen-admin-pw-1")
    assert authenticate(username="admin", password="chosen-admin-pw-1") is not None
    assert User.objects.filter(is_superuser=True).count() == 1
