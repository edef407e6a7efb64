"""alpaca-py itself, unmodified, against the gateway served by a real daphne on loopback: on
the paper exchange and on an Alpaca account behind the desk (the loopback Alpaca fakes)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from datetime import date

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetAssetsRequest,
    GetCalendarRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)
from alpaca.trading.stream import TradingStream

from conftest import require_service
from market.tests.stream.processes import (
    MANAGE,
    PYTHON,
    ROOT,
    daphne,
    free_port,
    stop,
    wait_for_port,
)
from tradedesk.broker.tests.alpaca_fakes import KEY_ID, SECRET

# The server's own database (it cannot see the test's): a trader, keys, and a JWT for the
# desk's API, printed as one JSON word. LINK (optional) links an Alpaca account first.
SETUP = """
import json
from django.core.management import call_command
from rest_framework_simplejwt.tokens import AccessToken
from accounts.services import link_broker_account, register_user
from accounts.selectors import default_broker_account
from gateway.services import create_api_key, revoke_api_key
call_command("migrate", verbosity=0)
user = register_user(username="botowner", password="s3cret-Passw0rd!")
if {link!r}:
    link_broker_account(user=user, provider="alpaca", label="alpaca", paper=True,
                        key_id={key_id!r}, secret={secret!r}, is_default=True)
account = default_broker_account(user)
key = create_api_key(user=user, broker_account=account, label="bot")
old = create_api_key(user=user, broker_account=account, label="old")
revoke_api_key(old.api_key)
fenced = create_api_key(
    user=user, broker_account=account, label="fenced", ip_allowlist="10.0.0.0/8"
)
keys = {{name: [issued.api_key.key_id, issued.secret]
        for name, issued in (("key", key), ("revoked", old), ("fenced", fenced))}}
keys["token"] = str(AccessToken.for_user(user))
print(json.dumps(keys, separators=(",", ":")))
"""


class Desk:
    def __init__(self, port: int, credentials: dict):
        self.port = port
        self.credentials = credentials
        self.rest = f"http://127.0.0.1:{port}/alpaca"
        self.stream = f"ws://127.0.0.1:{port}/alpaca/stream"

    def client(self, which: str = "key") -> TradingClient:
        key, secret = self.credentials[which]
        return TradingClient(key, secret, paper=True, url_override=self.rest)

    def desk_orders(self) -> list[dict]:
        """The desk's own API (JWT): its order history, each order with its events."""
        headers = {"Authorization": f"Bearer {self.credentials['token']}"}
        base = f"http://127.0.0.1:{self.port}/api/v1/orders/"
        listed = requests.get(base, headers=headers, timeout=10).json()["results"]
        return [
            requests.get(f"{base}{o['id']}/", headers=headers, timeout=10).json() for o in listed
        ]


def _serve(tmp_path, extra_env: dict, *, link: bool, with_runstream: bool = False):
    env = os.environ | {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'desk.sqlite3'}",
        "REDIS_URL": "",
        "TRADEDESK_SIM_ALWAYS_OPEN": "1",
        **extra_env,
    }
    script = SETUP.format(link=link, key_id=KEY_ID, secret=SECRET)
    setup = subprocess.run(
        [PYTHON, MANAGE, "shell", "-c", script],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert setup.returncode == 0, setup.stderr[-3000:]
    credentials = json.loads(setup.stdout.split()[-1])
    port = free_port()
    log = open(tmp_path / "daphne.log", "w")  # noqa: SIM115 - closed after the server
    server = daphne(env, port, stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(port)
    if with_runstream:  # the process that applies the broker's order updates
        runstream = subprocess.Popen(
            [PYTHON, MANAGE, "runstream"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        return Desk(port, credentials), [server, runstream], log
    return Desk(port, credentials), [server], log


@pytest.fixture
def paper_desk(tmp_path):
    desk, processes, log = _serve(tmp_path, {}, link=False)
    yield desk
    stop(processes)
    log.close()


def _alpaca_env(fake_alpaca) -> dict:
    fake_alpaca.positions = fake_alpaca.positions[1:]  # one AAPL position, 2 shares
    apple = fake_alpaca.assets["AAPL"]
    for symbol in ("TSLA", "NVDA", "AMZN"):
        fake_alpaca.assets[symbol] = apple | {"id": str(uuid.uuid4()), "symbol": symbol}
    return {
        "ALPACA_TRADING_URL": fake_alpaca.url,
        "ALPACA_DATA_URL": fake_alpaca.url,
        "ALPACA_REQUESTS_PER_MINUTE": "1000000",
        "ALPACA_TIMEOUT_SECONDS": "5",
    }


@pytest.fixture
def alpaca_desk(tmp_path, fake_alpaca):
    desk, processes, log = _serve(tmp_path, _alpaca_env(fake_alpaca), link=True)
    yield desk
    stop(processes)
    log.close()


class Updates:
    """TradingStream in its own thread, collecting trade updates."""

    def __init__(self, desk: Desk):
        key, secret = desk.credentials["key"]
        self.stream = TradingStream(key, secret, paper=True, url_override=desk.stream)
        self.received = []
        self.stream.subscribe_trade_updates(self._on_update)
        self.thread = threading.Thread(target=self.stream.run, daemon=True)

    async def _on_update(self, update) -> None:
        self.received.append(update)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stream.stop()
        self.thread.join(timeout=10)

    def wait_for(self, predicate, timeout: float = 15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [u for u in self.received if predicate(u)]
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"no such trade update; got {[u.event for u in self.received]}")


def _refused(call, status: int, code: int) -> APIError:
    with pytest.raises(APIError) as raised:
        call()
    assert raised.value.status_code == status and raised.value.code == code, raised.value
    return raised.value


def _common_reads(client: TradingClient) -> None:
    account = client.get_account()
    assert account.status.value == "ACTIVE" and float(account.buying_power) > 0
    clock = client.get_clock()
    assert clock.next_open is not None and clock.next_close is not None
    days = client.get_calendar(GetCalendarRequest(start=date(2026, 12, 21), end=date(2026, 12, 28)))
    assert [d.date.isoformat() for d in days][:2] == ["2026-12-21", "2026-12-22"]
    assets = client.get_all_assets(GetAssetsRequest(status="active"))
    assert "AAPL" in {a.symbol for a in assets}
    assert client.get_asset("AAPL").symbol == "AAPL"


def _every_order_type(client: TradingClient, *, market_fills: bool) -> dict:
    """Places one order of each type and class; returns them by name."""
    gtc, day, buy = TimeInForce.GTC, TimeInForce.DAY, OrderSide.BUY
    requests_by_name = {
        "market": MarketOrderRequest(symbol="AAPL", qty=2, side=buy, time_in_force=day),
        "notional": MarketOrderRequest(symbol="AAPL", notional=50, side=buy, time_in_force=day),
        "limit": LimitOrderRequest(
            symbol="AAPL",
            qty=1,
            side=buy,
            time_in_force=gtc,
            limit_price=1,
            client_order_id="bot-limit",
        ),
        "stop": StopOrderRequest(
            symbol="MSFT", qty=1, side=buy, time_in_force=gtc, stop_price=9000
        ),
        "stop_limit": StopLimitOrderRequest(
            symbol="MSFT",
            qty=1,
            side=buy,
            time_in_force=gtc,
            stop_price=9000,
            limit_price=9001,
        ),
        "trailing": TrailingStopOrderRequest(
            symbol="TSLA", qty=1, side=buy, time_in_force=gtc, trail_percent=5
        ),
        "bracket": LimitOrderRequest(
            symbol="NVDA",
            qty=1,
            side=buy,
            time_in_force=gtc,
            limit_price=2,
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=9000),
            stop_loss=StopLossRequest(stop_price=1),
        ),
        "oto": LimitOrderRequest(
            symbol="AMZN",
            qty=1,
            side=buy,
            time_in_force=gtc,
            limit_price=3,
            order_class=OrderClass.OTO,
            stop_loss=StopLossRequest(stop_price=1),
        ),
    }
    placed = {name: client.submit_order(request) for name, request in requests_by_name.items()}
    assert placed["market"].status.value == ("filled" if market_fills else "accepted")
    assert placed["limit"].client_order_id == "bot-limit"
    assert placed["bracket"].order_class == OrderClass.BRACKET and len(placed["bracket"].legs) == 2
    return placed


def _orders_round_trip(client: TradingClient, placed: dict) -> None:
    limit = placed["limit"]
    assert client.get_order_by_id(limit.id).id == limit.id
    assert client.get_order_by_client_id("bot-limit").id == limit.id
    listed = client.get_orders(
        GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500, nested=True)
    )
    assert {o.id for o in placed.values()} <= {o.id for o in listed}
    assert all(o.legs for o in listed if o.order_class == OrderClass.BRACKET)
    msft = client.get_orders(
        GetOrdersRequest(status=QueryOrderStatus.OPEN, symbols=["MSFT"], side=OrderSide.BUY)
    )
    assert msft and {o.symbol for o in msft} == {"MSFT"}
    oldest_two = client.get_orders(
        GetOrdersRequest(status=QueryOrderStatus.ALL, direction="asc", limit=2)
    )
    assert oldest_two[0].id == placed["market"].id
    later = client.get_orders(
        GetOrdersRequest(
            status=QueryOrderStatus.ALL, direction="asc", after=oldest_two[-1].submitted_at
        )
    )
    assert oldest_two[-1].id not in {o.id for o in later}

    replaced = client.replace_order_by_id(limit.id, ReplaceOrderRequest(qty=2, limit_price=1.5))
    assert replaced.id != limit.id and str(replaced.replaces) == str(limit.id)
    assert client.get_order_by_id(limit.id).status.value == "replaced"
    client.cancel_order_by_id(replaced.id)
    assert client.get_order_by_id(replaced.id).status.value == "canceled"
    # Alpaca: a client_order_id stays taken after its order is canceled.
    _refused(
        lambda: client.submit_order(
            LimitOrderRequest(
                symbol="AAPL",
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.GTC,
                limit_price=1,
                client_order_id="bot-limit",
            )
        ),
        422,
        40010001,
    )
    # A gate refusal: Alpaca's status and code.
    _refused(
        lambda: client.submit_order(
            LimitOrderRequest(
                symbol="AAPL",
                qty=5000,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.GTC,
                limit_price=190,
            )
        ),
        403,
        40310000,
    )
    _refused(lambda: client.get_order_by_id(uuid.uuid4()), 404, 40410000)

    canceled = client.cancel_orders()
    assert canceled and all(item.status == 200 for item in canceled)
    assert client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN)) == []

    # OCO: an exit for the position held (a take-profit and a stop-loss, one cancels the other).
    oco = client.submit_order(
        LimitOrderRequest(
            symbol="AAPL",
            qty=1,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            limit_price=8000,
            order_class=OrderClass.OCO,
            take_profit=TakeProfitRequest(limit_price=9000),
            stop_loss=StopLossRequest(stop_price=1),
        )
    )
    assert oco.order_class == OrderClass.OCO
    client.cancel_order_by_id(oco.id)


def _refused_keys(desk: Desk) -> None:
    _refused(lambda: desk.client("revoked").get_account(), 401, 40110000)
    _refused(lambda: desk.client("fenced").get_account(), 403, 40310000)


def _every_order_is_a_desk_order(desk: Desk, placed: dict) -> None:
    history = {o["broker_order_id"]: o for o in desk.desk_orders()}
    for order in placed.values():
        recorded = history[str(order.id)]
        assert recorded["placed_via"] == "gateway"
        assert "submitted" in [e["event"] for e in recorded["events"]]
        assert {e["source"] for e in recorded["events"]} <= {"gateway", "sync"}


def test_alpaca_py_on_the_paper_exchange(paper_desk):
    client = paper_desk.client()
    _common_reads(client)
    with Updates(paper_desk) as updates:
        time.sleep(1)  # TradingStream connects and listens in its thread
        placed = _every_order_type(client, market_fills=True)
        fill = updates.wait_for(lambda u: u.event == "fill" and u.order.id == placed["market"].id)
        assert float(fill.qty) == 2 and float(fill.price) > 0 and fill.execution_id
    _orders_round_trip(client, placed)
    held = {p.symbol: p for p in client.get_all_positions()}
    assert float(held["AAPL"].qty) > 2
    assert client.get_open_position("AAPL").symbol == "AAPL"
    closing = client.close_position("AAPL", ClosePositionRequest(qty="1"))
    assert closing.side == OrderSide.SELL and float(closing.qty) == 1
    closed_all = client.close_all_positions(cancel_orders=True)
    assert [item.symbol for item in closed_all] == ["AAPL"] and closed_all[0].status == 200
    assert client.get_all_positions() == []
    _refused_keys(paper_desk)
    _every_order_is_a_desk_order(paper_desk, placed)


def test_alpaca_py_on_an_alpaca_account_behind_the_desk(alpaca_desk, fake_alpaca):
    client = alpaca_desk.client()
    _common_reads(client)
    with Updates(alpaca_desk) as updates:
        time.sleep(1)
        placed = _every_order_type(client, market_fills=False)
        new = updates.wait_for(lambda u: u.event == "new" and u.order.id == placed["limit"].id)
        assert new.order.client_order_id == "bot-limit"
    sent = {r.body["client_order_id"] for r in fake_alpaca.requests_to("POST", "/v2/orders")}
    assert "bot-limit" in sent  # the desk placed it at Alpaca, under the bot's id
    _orders_round_trip(client, placed)
    assert [p.symbol for p in client.get_all_positions()] == ["AAPL"]
    closing = client.close_position("AAPL")
    assert closing.side == OrderSide.SELL and float(closing.qty) == 2
    assert fake_alpaca.requests_to("DELETE", "/v2/positions/AAPL") == []  # through the gate
    _refused_keys(alpaca_desk)
    _every_order_is_a_desk_order(alpaca_desk, placed)


@pytest.mark.services
def test_a_fill_at_alpaca_reaches_the_bots_trading_stream(
    tmp_path, settings, fake_alpaca, fake_trading_stream
):
    """Production layout: the fill comes from Alpaca's trade_updates to `runstream`, which
    records it; the desk's event reaches the gateway's stream in daphne over Redis."""
    require_service("Redis", bool(settings.REDIS_URL))
    env = _alpaca_env(fake_alpaca) | {
        "REDIS_URL": settings.REDIS_URL,
        "ALPACA_TRADING_STREAM_URL": fake_trading_stream.url,
    }
    desk, processes, log = _serve(tmp_path, env, link=True, with_runstream=True)
    try:
        client = desk.client()
        with Updates(desk) as updates:
            order = client.submit_order(
                LimitOrderRequest(
                    symbol="AAPL",
                    qty=1,
                    side=OrderSide.BUY,
                    time_in_force=TimeInForce.GTC,
                    limit_price=150,
                )
            )
            updates.wait_for(lambda u: u.event == "new" and u.order.id == order.id)
            deadline = time.monotonic() + 20
            filled = fake_alpaca.fill(str(order.id), "149.5")
            while not fake_trading_stream.push_trade_update(
                "fill", filled, price="149.5", qty="1", position_qty="3"
            ):  # runstream's Alpaca stream is still connecting
                assert time.monotonic() < deadline, "runstream never listened at Alpaca"
                time.sleep(0.2)
            fill = updates.wait_for(lambda u: u.event == "fill" and u.order.id == order.id)
        assert float(fill.price) == 149.5 and float(fill.qty) == 1
        assert fill.order.status.value == "filled"
        assert client.get_order_by_id(order.id).filled_avg_price == "149.5"
    finally:
        stop(processes)
        log.close()
