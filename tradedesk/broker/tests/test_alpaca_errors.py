"""Alpaca's refusals and failures become the desk's errors; timeouts; pacing."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest
from django.core.cache import cache

from tradedesk.broker import BrokerCredentials
from tradedesk.broker.alpaca import AlpacaBroker
from tradedesk.broker.alpaca.transport import PACING_WINDOW_SECONDS, Pacer
from tradedesk.broker.errors import (
    AuthenticationFailed,
    BrokerUnavailable,
    NotCancelable,
    OrderNotFound,
    OrderRejected,
    RateLimited,
)
from tradedesk.broker.types import OrderRequest, ReplaceRequest

from .alpaca_fakes import load_fixture


def market_order() -> OrderRequest:
    return OrderRequest(
        symbol="AAPL",
        side="buy",
        type="market",
        time_in_force="day",
        client_order_id=f"td-{uuid.uuid4()}",
        qty=Decimal("1000000"),
    )


def test_insufficient_buying_power_is_rejected_with_alpacas_code(broker, fake_alpaca):
    fake_alpaca.fail_next(403, load_fixture("error_403_insufficient_buying_power.json"))
    with pytest.raises(OrderRejected) as info:
        broker.submit_order(market_order())
    assert type(info.value) is OrderRejected
    assert (info.value.code, info.value.http_status) == (40310000, 403)
    assert info.value.message == "insufficient buying power"


def test_unprocessable_order_is_rejected(broker, fake_alpaca):
    fake_alpaca.fail_next(422, load_fixture("error_422_subpenny_limit_price.json"))
    with pytest.raises(OrderRejected) as info:
        broker.submit_order(market_order())
    assert type(info.value) is OrderRejected  # 422 on a submit is not "not cancelable"
    assert (info.value.code, info.value.http_status) == (42210000, 422)
    assert "sub-penny" in info.value.message


def test_422_on_cancel_and_replace_is_not_cancelable(broker, fake_alpaca):
    body = {"code": 42210000, "message": "order is not cancelable"}
    fake_alpaca.fail_next(422, body, times=2)
    order_id = str(uuid.uuid4())
    with pytest.raises(NotCancelable):
        broker.cancel_order(order_id)
    with pytest.raises(NotCancelable):
        broker.replace_order(order_id, ReplaceRequest(qty=Decimal(1)))


def test_404_is_order_not_found(broker, fake_alpaca):
    fake_alpaca.fail_next(404, {"code": 40410000, "message": "order not found"})
    with pytest.raises(OrderNotFound) as info:
        broker.get_order(str(uuid.uuid4()))
    assert info.value.code == 40410000


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, {"code": 40110000, "message": "request is not authorized"}),
        (403, {"message": "forbidden"}),
    ],
)
def test_refused_credentials(broker, fake_alpaca, status, body):
    fake_alpaca.fail_next(status, body)
    with pytest.raises(AuthenticationFailed):
        broker.get_account()


def test_wrong_secret_is_refused_by_trading_and_data_hosts(alpaca_settings, fake_alpaca):
    wrong = AlpacaBroker(BrokerCredentials("alpaca", True, fake_alpaca.key_id, "wrong"))
    with pytest.raises(AuthenticationFailed) as info:
        wrong.get_account()
    assert info.value.code == 40110000
    with pytest.raises(AuthenticationFailed):
        wrong.get_latest_quotes(["AAPL"])


def test_429_is_rate_limited_at_once_with_retry_after(broker, fake_alpaca):
    fake_alpaca.fail_next(429, {"message": "too many requests"}, {"Retry-After": "7"}, times=4)
    started = time.monotonic()
    with pytest.raises(RateLimited) as info:
        broker.get_account()
    assert info.value.retry_after == 7
    # alpaca-py's own retries (3 x 3 s) are off: one request, no sleeping.
    assert time.monotonic() - started < 1
    assert len(fake_alpaca.requests_to("GET", "/v2/account")) == 1


def test_429_without_retry_after_waits_one_requests_share(alpaca_settings, fake_alpaca):
    alpaca_settings.ALPACA_REQUESTS_PER_MINUTE = 120
    broker = AlpacaBroker(BrokerCredentials("alpaca", True, fake_alpaca.key_id, fake_alpaca.secret))
    fake_alpaca.fail_next(429, {"message": "too many requests"})
    with pytest.raises(RateLimited) as info:
        broker.get_clock()
    assert info.value.retry_after == 0.5


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_unavailable(broker, fake_alpaca, status):
    fake_alpaca.fail_next(status, {"message": "internal error"})
    with pytest.raises(BrokerUnavailable):
        broker.submit_order(market_order())
    assert len(fake_alpaca.requests_to("POST", "/v2/orders")) == 1  # never resubmitted


def test_non_json_error_body_is_still_mapped(broker, fake_alpaca):
    fake_alpaca.fail_next(502, "<html>bad gateway</html>")
    with pytest.raises(BrokerUnavailable):
        broker.get_account()


def test_hung_server_times_out_as_unavailable(alpaca_settings, alpaca_credentials, fake_alpaca):
    alpaca_settings.ALPACA_TIMEOUT_SECONDS = 0.3
    broker = AlpacaBroker(alpaca_credentials)
    fake_alpaca.hang_next()
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="in time"):
        broker.get_account()
    assert time.monotonic() - started < 1.5
    assert broker.get_clock().is_open is False  # the next request is served normally


def test_unreachable_server_is_unavailable(alpaca_settings, alpaca_credentials):
    alpaca_settings.ALPACA_TRADING_URL = "http://127.0.0.1:9"  # discard port: refused
    with pytest.raises(BrokerUnavailable, match="cannot reach"):
        AlpacaBroker(alpaca_credentials).get_account()


def test_configured_v2_suffix_is_tolerated(alpaca_settings, alpaca_credentials, fake_alpaca):
    alpaca_settings.ALPACA_TRADING_URL = fake_alpaca.url + "/v2/"
    assert AlpacaBroker(alpaca_credentials).get_clock().is_open is False


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_pacer_holds_callers_to_the_budget_per_window():
    cache.clear()
    fake = FakeTime()
    pacer = Pacer("PKPACING", 60, clock=fake.clock, sleep=fake.sleep)
    assert pacer.budget == PACING_WINDOW_SECONDS  # 60/min: one a second
    for _ in range(pacer.budget):
        pacer.acquire()
    assert fake.slept == []
    pacer.acquire()  # over budget: waits for the next window
    assert fake.slept == [PACING_WINDOW_SECONDS]


def test_pacer_budget_is_shared_per_key_through_the_cache():
    cache.clear()
    fake = FakeTime()
    web = Pacer("PKSHARED", 12, clock=fake.clock, sleep=fake.sleep)
    worker = Pacer("PKSHARED", 12, clock=fake.clock, sleep=fake.sleep)
    other_account = Pacer("PKOTHER", 12, clock=fake.clock, sleep=fake.sleep)
    web.acquire()
    other_account.acquire()
    assert fake.slept == []
    worker.acquire()  # the key's one request of this window is spent
    assert len(fake.slept) == 1


def test_every_http_request_is_paced(broker, fake_alpaca, monkeypatch):
    calls = []
    monkeypatch.setattr(Pacer, "acquire", lambda self: calls.append(self))
    broker.get_account()
    broker.get_latest_quotes(["AAPL"])
    assert len(calls) == 2


def test_pacing_fails_open_when_the_cache_is_down(broker, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(cache, "add", broken)
    assert broker.get_clock().is_open is False
