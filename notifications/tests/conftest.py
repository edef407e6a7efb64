"""Fixtures for the notification tests: Celery runs its tasks in-line, webhooks may call
loopback (the receivers here are threads on 127.0.0.1)."""

from __future__ import annotations

from decimal import Decimal

import pytest


@pytest.fixture(autouse=True)
def _inline_and_loopback(eager, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run a block as if its transaction committed: the notices' receivers run after it."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def market_buy(user, qty: str = "2"):
    """A market buy of AAPL on the user's default account (the paper exchange fills it)."""
    from accounts.selectors import default_broker_account
    from orders import services
    from orders.validation import OrderInput

    return services.place_order(
        user=user,
        broker_account=default_broker_account(user),
        order_input=OrderInput(
            symbol="AAPL", side="buy", type="market", time_in_force="day", qty=Decimal(qty)
        ),
    ).order
