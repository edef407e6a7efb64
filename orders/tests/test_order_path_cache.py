"""The order path's cache round trips: the gate's look-ups read once and handed to the check,
the account's mark moved in one atomic step (a script on Redis), and a market order's count
of Redis round trips pinned."""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from decimal import Decimal

import pytest
import redis.connection
from django.conf import settings
from django.core.cache import cache

from accounts.services import broker_for
from conftest import require_service
from orders import validation

from .validation_support import RecordingBroker, order

pytestmark = pytest.mark.django_db

# throttle (1 script), halts (1 read), prefetch (1 read), the mark again after the desk's
# orders were read (1 read), the account as the order left it (1 script).
MARKET_ORDER_ROUND_TRIPS = 5


@pytest.fixture
def account(trader):
    return trader.broker_accounts.get()


@pytest.fixture
def broker(account):
    return RecordingBroker(broker_for(account))


def _mark(account) -> int | None:
    return cache.get(validation._changed_key(account))


def _state(account) -> validation.AccountState | None:
    return cache.get(validation._account_key(account))


@pytest.mark.services
def test_a_market_order_makes_no_more_than_its_redis_round_trips(place, monkeypatch):
    require_service("Redis (REDIS_URL)", bool(settings.REDIS_URL))
    assert place().status_code == 201  # the scripts are loaded, the look-ups cached
    assert place().status_code == 201  # the day's count kept (once, then every 50 orders)
    sent: list[bytes] = []
    send = redis.connection.AbstractConnection.send_packed_command

    def counted(connection, command, *args, **kwargs):
        sent.append(bytes(command[0] if isinstance(command, list) else command)[:80])
        return send(connection, command, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    assert place().status_code == 201

    assert len(sent) <= MARKET_ORDER_ROUND_TRIPS, sent


def test_the_check_takes_the_prefetched_look_ups_without_reading_them_again(
    trader, account, broker
):
    prefetched = validation.prefetch(broker, account, "AAPL")
    looked = dict(broker.calls)
    cache.delete_many(
        [
            validation._account_key(account),
            validation._asset_key(broker, "AAPL"),
            validation._quote_key(broker, "AAPL"),
        ]
    )

    verdict = validation.validate_order(
        order(), broker=broker, user=trader, broker_account=account, prefetched=prefetched
    )

    assert verdict.valid, verdict
    assert looked == {"get_asset": 1, "get_latest_quotes": 1, "get_account": 1, "list_positions": 1}
    assert dict(broker.calls) == looked  # nothing asked again, though the cache forgot it all


def test_one_prefetch_stores_what_it_asked_the_broker_for_the_next_one(account, broker):
    validation.prefetch(broker, account, "AAPL")
    again = validation.prefetch(broker, account, "AAPL")

    assert broker.calls["get_account"] == broker.calls["get_asset"] == 1
    assert broker.calls["get_latest_quotes"] == 1
    assert again.asset.symbol == "AAPL" and again.quote is not None


def test_a_symbol_the_broker_does_not_know_is_prefetched_and_cached_as_none(account, broker):
    assert validation.prefetch(broker, account, "ZZZZZ").asset is None
    assert validation.prefetch(broker, account, "ZZZZZ").asset is None
    assert broker.calls["get_asset"] == 1


def test_a_command_after_the_prefetch_makes_its_account_look_stale_for_the_check(
    trader, account, broker
):
    prefetched = validation.prefetch(broker, account, "AAPL")
    validation.forget_account_state(account)  # another order reached the broker meanwhile

    validation.validate_order(
        order(), broker=broker, user=trader, broker_account=account, prefetched=prefetched
    )

    assert broker.calls["get_account"] == 2


def test_a_look_stored_after_the_prefetch_by_a_newer_command_is_taken_from_the_cache(
    trader, account, broker
):
    prefetched = validation.prefetch(broker, account, "AAPL")
    known, positions = broker_for(account).get_account_and_positions()
    poorer = dataclasses.replace(known, buying_power=Decimal("1"))
    validation.remember_account_state(account, poorer, positions, time.time())

    verdict = validation.validate_order(
        order(), broker=broker, user=trader, broker_account=account, prefetched=prefetched
    )

    assert [issue.code for issue in verdict.errors] == ["insufficient_buying_power"]
    assert broker.calls["get_account"] == 1  # the newer look came from the cache


# --- the mark: on Redis a script, on the local-memory cache a lock of the process ----------
@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.services)])
def mark_cache(request, settings):
    if request.param == "redis":
        require_service("Redis (REDIS_URL)", bool(settings.REDIS_URL))
    else:
        settings.CACHES = {
            **settings.CACHES,
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        }
    cache.clear()
    yield request.param
    cache.clear()


@pytest.fixture
def look(account):
    return broker_for(account).get_account_and_positions()


@pytest.mark.usefixtures("mark_cache")
def test_a_remembered_look_is_stored_with_its_mark_and_counts_as_newer(account, look):
    validation.remember_account_state(account, *look, 1_700_000_000.25)

    assert _mark(account) == 1_700_000_000_250_000
    assert _state(account).as_of_us == 1_700_000_000_250_001
    assert _state(account).account == look[0]


@pytest.mark.usefixtures("mark_cache")
def test_a_look_older_than_the_mark_is_not_stored_and_the_mark_keeps_its_place(account, look):
    newer = dataclasses.replace(look[0], cash=Decimal("7"))
    validation.remember_account_state(account, newer, look[1], 1_700_000_002.0)
    validation.remember_account_state(account, *look, 1_700_000_001.0)

    assert _mark(account) == 1_700_000_002_000_000
    assert _state(account).account.cash == Decimal("7")


@pytest.mark.usefixtures("mark_cache")
def test_forgetting_drops_the_look_and_moves_the_mark_to_now_unless_it_is_later(account, look):
    validation.remember_account_state(account, *look, 1_700_000_000.0)
    before = validation._now_us()
    validation.forget_account_state(account)
    assert _state(account) is None
    assert before <= _mark(account) <= validation._now_us()

    later = int(time.time()) + 60  # another command's, a minute ahead of this clock
    validation.remember_account_state(account, *look, later)
    validation.forget_account_state(account)
    assert _state(account) is None
    assert _mark(account) == later * 1_000_000


@pytest.mark.usefixtures("mark_cache")
def test_without_the_cache_time_a_remembered_look_is_not_kept_but_its_mark_is(
    account, look, settings
):
    settings.VALIDATION_CACHE_SECONDS = 0
    validation.remember_account_state(account, *look, 1_700_000_000.0)

    assert _mark(account) == 1_700_000_000_000_000
    assert _state(account) is None


@pytest.mark.usefixtures("mark_cache")
def test_the_mark_never_moves_back_under_concurrent_writers(account, look):
    """Writers remember looks in a shuffled order while a reader watches the mark: it only
    moves forward, and ends at the latest look, which is the one stored."""
    times = [1_700_000_000 + step / 1000 for step in range(400)]
    random.Random(19).shuffle(times)
    batches = [times[index::8] for index in range(8)]
    start, done = threading.Barrier(len(batches) + 1), threading.Event()
    seen: list[int] = []

    def write(batch: list[float]) -> None:
        start.wait()
        for as_of in batch:
            known = dataclasses.replace(look[0], cash=Decimal(str(as_of)))
            validation.remember_account_state(account, known, look[1], as_of)

    def watch() -> None:
        start.wait()
        while not done.is_set():
            mark = _mark(account)
            if mark is not None:
                seen.append(mark)

    writers = [threading.Thread(target=write, args=(batch,)) for batch in batches]
    watcher = threading.Thread(target=watch)
    for thread in [*writers, watcher]:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    watcher.join()

    latest = max(times)
    assert seen == sorted(seen)
    assert _mark(account) == math.ceil(latest * 1_000_000)
    assert _state(account).account.cash == Decimal(str(latest))
