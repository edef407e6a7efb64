"""Fixtures shared by every app's tests."""

from __future__ import annotations

import os

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

pytest_plugins = ["tradedesk.broker.tests.alpaca_plugin"]

REQUIRE_SERVICES = os.environ.get("TRADEDESK_REQUIRE_SERVICES") == "1"


def require_service(name: str, available: bool) -> None:
    """Skip a test that needs a real server, unless CI requires it: then it fails."""
    if available:
        return
    message = f"{name} is not configured"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}, and TRADEDESK_REQUIRE_SERVICES=1")
    pytest.skip(message)


def pytest_runtest_logreport(report):
    # Belt and braces: under TRADEDESK_REQUIRE_SERVICES a skipped services test fails the run.
    if REQUIRE_SERVICES and report.skipped and "services" in report.keywords:
        report.outcome = "failed"


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def make_user(db):
    from accounts.services import register_user

    counter = iter(range(1, 10_000))

    def make(username: str | None = None, password: str = "s3cret-Passw0rd!", **extra):  # noqa: S107
        user = register_user(username=username or f"trader{next(counter)}", password=password)
        for key, value in extra.items():
            setattr(user, key, value)
        if extra:
            user.save()
        return user

    return make


@pytest.fixture
def trader(make_user):
    return make_user("alice")


@pytest.fixture
def other_trader(make_user):
    return make_user("mallory")


def place_resting_buy(user, *, symbol: str = "AAPL", limit: str = "1", account=None):
    """An open limit buy (1 share, gtc) placed through the desk's service; far below the
    market it rests. On `account`, else the user's default one."""
    from decimal import Decimal

    from accounts.selectors import default_broker_account
    from orders import services
    from orders.validation import OrderInput

    order = services.place_order(
        user=user,
        broker_account=account or default_broker_account(user),
        order_input=OrderInput(
            symbol=symbol,
            side="buy",
            type="limit",
            time_in_force="gtc",
            qty=Decimal("1"),
            limit_price=Decimal(limit),
        ),
    ).order
    assert order.is_open, order.status
    return order


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def api(trader) -> APIClient:
    return client_for(trader)


@pytest.fixture
def other_api(other_trader) -> APIClient:
    return client_for(other_trader)
