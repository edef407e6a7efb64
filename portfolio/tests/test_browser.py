"""The /portfolio/ page in headless Chromium, with data: the charts draw, the tables fill."""

from __future__ import annotations

import shutil
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders.tests.test_browser import (  # the browser fixtures and helpers, shared
    SCREENSHOTS,
    _orm_beside_playwright,  # noqa: F401
    chromium,  # noqa: F401
    log_in,
    page,  # noqa: F401
    shot,
)
from portfolio.models import AccountSnapshot, Fill

from .conftest import make_order

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _history(account):
    now = timezone.now()
    executions = [  # (days ago, symbol, side, qty, price)
        (20, "AAPL", "buy", 10, "180"),
        (15, "AAPL", "sell", 6, "195"),
        (12, "MSFT", "sell", 5, "420"),
        (9, "MSFT", "buy", 5, "430"),
        (6, "NVDA", "buy", 20, "99999"),
        (3, "AAPL", "sell", 4, "170"),
        (2, "TSLA", "buy", 3, "99999"),
        (1, "NVDA", "buy", 2, "99000"),
    ]
    for days, symbol, side, qty, price in executions:
        order = make_order(account, symbol, side, qty)
        Fill.objects.create(
            broker_account=account, order=order, broker_order_id=order.broker_order_id,
            execution_id=f"x-{order.pk}", symbol=symbol, side=side, qty=qty,
            price=Decimal(price), at=now - timedelta(days=days), source="manual",
        )  # fmt: skip
    AccountSnapshot.objects.bulk_create(
        AccountSnapshot(
            broker_account=account,
            at=now - timedelta(hours=4 * (180 - step)),
            equity=Decimal(
                100000 + step * 40 - (step % 17) * 130 - (600 if 90 < step < 120 else 0)
            ),
            cash=Decimal(50000),
            long_market_value=Decimal(50000),
            short_market_value=0,
        )
        for step in range(180)
    )


def test_portfolio_page_with_data(page, trader):  # noqa: F811 (the shared fixture)
    _history(trader.broker_accounts.get())
    log_in(page, "alice")
    page.get_by_role("link", name="Portfolio").click()
    page.wait_for_selector("#equity-chart[data-loaded]")
    for chart in ("#equity-chart", "#drawdown-chart"):
        assert page.locator(f"{chart} canvas").count() > 0
    assert page.locator("#trades tbody tr").count() == 3
    assert page.get_by_text("wash-sale risk").count() >= 1
    shot(page, "portfolio")
    shutil.copy(SCREENSHOTS / "portfolio.png", "/tmp/portfolio.png")

    # The positions page's portfolio line: the account's equity, from the same history.
    page.get_by_role("link", name="Positions").click()
    page.wait_for_selector("#portfolio-chart[data-loaded='1']")
    assert page.locator("#portfolio-chart canvas").count() > 0
