"""The gate's halt read is cached only where every process shares the cache, and a halt set
or lifted anywhere reaches the next order at once."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.cache import cache

from conftest import require_service
from orders import halts, selectors
from orders.models import TradingHalt

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(make_user):
    return make_user("operator", is_staff=True, is_superuser=True)


def codes(response) -> list[str]:
    return [error["code"] for error in response.json().get("errors", [])]


def test_without_a_shared_cache_a_halt_another_process_wrote_stops_the_next_order(
    place, trader, operator
):
    if settings.REDIS_URL:
        pytest.skip("with a shared cache, halts are written through the ORM (its signals)")
    assert place().status_code == 201  # whatever an order could cache, it has
    # Another process's write: this process hears of it through no signal of its own.
    TradingHalt.objects.bulk_create(
        [TradingHalt(scope="desk", mode="halted", reason="drill", created_by=operator)]
    )

    refused = place()
    assert refused.status_code == 400
    assert codes(refused) == ["trading_halted"]


@pytest.fixture
def shared_cache():
    require_service("Redis (REDIS_URL)", bool(settings.REDIS_URL))


@pytest.mark.services
@pytest.mark.usefixtures("shared_cache")
def test_a_halt_set_then_lifted_reaches_the_next_order_at_once(
    place, trader, operator, django_capture_on_commit_callbacks
):
    assert place().status_code == 201  # the halts are cached now
    with django_capture_on_commit_callbacks(execute=True):
        halt = halts.set_halt(
            scope="user", target=trader, mode="halted", reason="review", operator=operator
        ).halt
    assert codes(place()) == ["trading_halted"]

    with django_capture_on_commit_callbacks(execute=True):
        halts.lift_halt(halt, operator=operator, reason="done")
    assert place().status_code == 201


@pytest.mark.services
@pytest.mark.usefixtures("shared_cache")
def test_a_copy_read_before_a_change_but_stored_after_it_is_never_used(
    trader, operator, django_capture_on_commit_callbacks
):
    account = trader.broker_accounts.get()
    assert selectors.active_trading_halts(trader, account) == []
    generation, stale = cache.get(selectors._HALTS_KEY)  # a reader's copy, read before

    with django_capture_on_commit_callbacks(execute=True):
        halts.set_halt(scope="desk", target=None, mode="halted", reason="x", operator=operator)
    cache.set(selectors._HALTS_KEY, (generation, stale))  # ... and stored after the change

    assert [halt.reason for halt in selectors.active_trading_halts(trader, account)] == ["x"]


@pytest.mark.services
@pytest.mark.usefixtures("shared_cache")
def test_the_cached_copy_names_a_halted_account_without_holding_its_secret(
    trader, operator, django_capture_on_commit_callbacks
):
    account = trader.broker_accounts.get()
    with django_capture_on_commit_callbacks(execute=True):
        halts.set_halt(
            scope="broker_account", target=account, mode="halted", reason="r", operator=operator
        )
    selectors.active_trading_halts(trader, account)  # read and cached

    _, (cached,) = cache.get(selectors._HALTS_KEY)
    assert cached.broker_account.label == account.label
    assert "secret" in cached.broker_account.get_deferred_fields()
