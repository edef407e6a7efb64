"""Fees where the broker reports them: Alpaca's FEE and PTC activities, read by the activity
sync from the loopback fake (alpaca-py doing real HTTP), attached to the fills they were
charged for exactly once, and seen in the performance summary and the round trips."""

from __future__ import annotations

import threading
from decimal import Decimal as D

import pytest
from django.db import connection, connections

from accounts.models import BrokerAccount
from accounts.services import broker_for
from conftest import require_service
from portfolio import services
from portfolio.models import FeeCharge, Fill
from tradedesk.broker.tests.alpaca_fakes import KEY_ID, SECRET, FakeAlpacaREST

from .test_fills import market

# The fake's executions are at 2026-01-01 00:00 UTC and a few ms: 19:00 on Dec 31 in New York,
# so they belong to the trading day 2025-12-31.
DAY = "2025-12-31"


@pytest.fixture
def alpaca_account(trader, alpaca_settings) -> BrokerAccount:
    return BrokerAccount.objects.create(
        user=trader, provider="alpaca", paper=True, label="Alpaca", key_id=KEY_ID, secret=SECRET
    )


def executed(fake: FakeAlpacaREST, side: str, *executions: tuple[str, str]) -> dict:
    order = fake.add_order(side=side, qty=sum(int(q) for q, _ in executions))
    for qty, price in executions:
        fake.execute(order["id"], qty, price)
    return order


@pytest.fixture
def round_trip(fake_alpaca: FakeAlpacaREST) -> dict:
    """Buy 4@100 + 6@100 (one order), sell 3@110 + 7@110 (another); the day's fees."""
    buy = executed(fake_alpaca, "buy", ("4", "100"), ("6", "100"))
    executed(fake_alpaca, "sell", ("3", "110"), ("7", "110"))
    fake_alpaca.charge_fee(date=DAY, amount="0.03", sub_type="REG")  # sells, by proceeds
    fake_alpaca.charge_fee(date=DAY, amount="0.01", sub_type="TAF")  # sells, by shares
    fake_alpaca.charge_fee(date=DAY, amount="0.02", sub_type="CAT")  # all 20 shares
    # A pass-through charge naming the buy order: its fills only.
    fake_alpaca.charge_fee(
        date=DAY, amount="0.10", activity_type="PTC", sub_type=None, order_id=buy["id"]
    )
    return buy


def fees_by_fill(account) -> list[tuple[str, D, D]]:
    return [
        (f.side, f.qty, f.fee) for f in Fill.objects.filter(broker_account=account).order_by("at")
    ]


@pytest.mark.django_db
def test_the_activity_sync_attaches_each_fee_to_the_fills_it_was_charged_for(
    alpaca_account, fake_alpaca, round_trip
):
    assert services.sync_fills(broker_account=alpaca_account) == 4
    assert fees_by_fill(alpaca_account) == [
        # CAT 0.02 over 20 shares + PTC 0.10 over the buy's 10 shares
        ("buy", D(4), D("0.044")),
        ("buy", D(6), D("0.066")),
        # REG 0.03 by proceeds (330 of 1100), TAF 0.01 by shares (3 of 10), CAT
        ("sell", D(3), D("0.009") + D("0.003") + D("0.003")),
        ("sell", D(7), D("0.021") + D("0.007") + D("0.007")),
    ]
    charges = FeeCharge.objects.filter(broker_account=alpaca_account)
    assert sorted(charges.values_list("sub_type", "fill_count")) == [
        ("", 2),
        ("CAT", 4),
        ("REG", 2),
        ("TAF", 2),
    ]
    assert not charges.filter(attached_at__isnull=True).exists()
    [request] = fake_alpaca.requests_to("GET", "/v2/account/activities")
    assert (request.query["activity_types"], request.query["direction"]) == ("FEE,PTC", "asc")


@pytest.mark.django_db
def test_fees_show_in_performance_and_trades_once_however_often_synced(
    api, alpaca_account, fake_alpaca, round_trip
):
    for full in (False, False, True):
        services.sync_fills(broker_account=alpaca_account, full=full)
    assert FeeCharge.objects.count() == 4
    performance = api.get(
        "/api/v1/portfolio/performance/", {"broker_account": alpaca_account.pk}
    ).json()
    # (110 - 100) x 10 = 100.00, less 0.03 + 0.01 + 0.02 + 0.10 of fees.
    assert (performance["fees"], performance["realized_pl"]) == ("0.16", "99.84")
    [trip] = api.get("/api/v1/portfolio/trades/", {"broker_account": alpaca_account.pk}).json()[
        "results"
    ]
    assert (trip["qty"], trip["fees"], trip["realized_pl"]) == ("10.000000000", "0.16", "99.84")


@pytest.mark.django_db
def test_a_fee_no_recorded_fill_matches_waits_and_attaches_when_its_fills_arrive(
    alpaca_account, fake_alpaca
):
    fake_alpaca.charge_fee(date=DAY, amount="0.05", sub_type="TAF", symbol="MSFT")
    fake_alpaca.charge_fee(date="2025-12-30", amount="0.07", sub_type="CAT")  # no trading then
    fake_alpaca.charge_fee(date=DAY, amount="0.09", sub_type="CAT", status="canceled")
    executed(fake_alpaca, "buy", ("5", "50"))  # a buy: no TAF on it
    services.sync_fills(broker_account=alpaca_account)
    assert FeeCharge.objects.count() == 2  # the canceled one is not a fee
    assert FeeCharge.objects.filter(attached_at__isnull=True).count() == 2
    assert Fill.objects.get().fee == 0
    # The MSFT sell the stream and the last sync missed: the next sync records it, and the
    # waiting TAF fee (of its day, symbol and side) lands on it; the 12-30 fee still waits.
    order = fake_alpaca.add_order(symbol="MSFT", side="sell", qty=2)
    fake_alpaca.execute(order["id"], "2", "300")
    services.sync_fills(broker_account=alpaca_account)
    assert Fill.objects.get(symbol="MSFT").fee == D("0.05")
    waiting = FeeCharge.objects.filter(attached_at__isnull=True)
    assert list(waiting.values_list("amount", flat=True)) == [D("0.07")]
    assert services.attach_fees(broker_account=alpaca_account) == 0


@pytest.mark.django_db
def test_the_paper_exchange_charges_no_fees(trader):
    buy = market(trader, "buy", "2")
    account = buy.broker_account
    assert broker_for(account).list_fee_activities() == []
    assert list(broker_for(account).iter_fee_activities()) == []
    services.sync_fills(broker_account=account)
    assert FeeCharge.objects.count() == 0
    assert Fill.objects.get().fee == 0


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_concurrent_syncs_attach_each_fee_once(alpaca_account, fake_alpaca, round_trip):
    require_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")
    barrier = threading.Barrier(6)
    errors = []

    def sync():
        try:
            barrier.wait(timeout=20)
            services.sync_fills(broker_account=alpaca_account, full=True)
        except Exception as failure:  # handed to the assertion below
            errors.append(failure)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sync) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert FeeCharge.objects.filter(attached_at__isnull=False).count() == 4
    assert sum(f.fee for f in Fill.objects.all()) == D("0.16")
