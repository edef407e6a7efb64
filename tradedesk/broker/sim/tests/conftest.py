"""A paper account on a clock the test moves, over real NYSE hours."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tradedesk.broker.sim.exchange import SimBroker, open_account
from tradedesk.broker.types import OrderRequest

# Tuesday 2026-11-24, 10:00 New York: the market is open.
OPEN = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta) -> datetime:
        self.at += timedelta(**delta)
        return self.at


@pytest.fixture
def clock(settings):
    settings.TRADEDESK_SIM_ALWAYS_OPEN = False
    return Clock(OPEN)


@pytest.fixture
def broker(db, clock):
    return SimBroker(open_account(), now=clock)


_ids = itertools.count(1)


def request(symbol="AAPL", side="buy", type="market", time_in_force="day", **fields):
    fields.setdefault("qty", None if "notional" in fields else "1")
    for name in ("qty", "notional", "limit_price", "stop_price", "trail_price", "trail_percent"):
        if fields.get(name) is not None:
            fields[name] = Decimal(str(fields[name]))
    return OrderRequest(
        symbol=symbol,
        side=side,
        type=type,
        time_in_force=time_in_force,
        client_order_id=f"test-{next(_ids)}",
        **fields,
    )
