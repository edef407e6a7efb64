"""Executions, account snapshots and fees are the audit trail: admin lists and shows them,
as a trader writes numbers, and never adds, changes or deletes one (superusers included)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.selectors import default_broker_account
from portfolio.models import AccountSnapshot, FeeCharge

from .conftest import T0, trade

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("operator", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def records(trader):
    account = default_broker_account(trader)
    fill = trade(account, "AAPL", "buy", ("2", "187.5"), minutes=0).fills.get()
    snapshot = AccountSnapshot.objects.create(
        broker_account=account,
        at=T0,
        equity=Decimal("100000"),
        cash=Decimal("99625"),
        long_market_value=Decimal("375"),
        short_market_value=Decimal("0"),
    )
    fee = FeeCharge.objects.create(
        broker_account=account,
        activity_id="a-1",
        activity_type="FEE",
        date=T0.date(),
        amount=Decimal("-0.02"),
    )
    return {"fill": fill, "accountsnapshot": snapshot, "feecharge": fee}


@pytest.mark.parametrize("model", ["fill", "accountsnapshot", "feecharge"])
def test_portfolio_records_are_append_only_in_admin(admin_client, records, model):
    record = records[model]
    base = f"/admin/portfolio/{model}/"
    assert admin_client.get(f"{base}add/").status_code == 403
    assert admin_client.get(f"{base}{record.pk}/change/").status_code == 200
    assert admin_client.post(f"{base}{record.pk}/change/", {}).status_code == 403
    assert admin_client.post(f"{base}{record.pk}/delete/", {"post": "yes"}).status_code == 403
    assert "delete_selected" not in admin_client.get(base).content.decode()
    assert type(record).objects.filter(pk=record.pk).exists()


def test_fills_show_quantities_and_prices_as_written(admin_client, records):
    listing = admin_client.get("/admin/portfolio/fill/").content.decode()
    assert ">187.5<" in listing and ">2<" in listing and "187.500000000" not in listing
    detail = admin_client.get(f"/admin/portfolio/fill/{records['fill'].pk}/change/")
    assert "187.500000000" not in detail.content.decode()
