"""Day trades counted from the desk's own fills, as FINRA counts them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conftest import require_service
from orders import selectors
from orders.day_trades import Fill, business_days, count_day_trades, trading_day
from orders.models import OrderEvent
from tradedesk.broker.sim.models import SimAccount

from .validation_support import TUESDAY_OPEN, codes, desk_order, fill, make_desk, order

D = Decimal


def _fills(*steps: str) -> list[Fill]:
    """'B250 S100' → [Fill(buy 250), Fill(sell 100)]."""
    return [Fill("buy" if step[0] == "B" else "sell", D(step[1:])) for step in steps]


@pytest.mark.parametrize(
    ("steps", "start", "expected"),
    [
        # FINRA's examples (Regulatory Notice 21-13, as Alpaca publishes them)
        pytest.param("B250 B250 S500", "0", 1, id="finra-A"),
        pytest.param("B100 S100 B100 S100", "0", 2, id="finra-B"),
        pytest.param("B500 S100 S100 S300", "0", 1, id="finra-C"),
        pytest.param("B250 B300 B100 S150 S175", "0", 1, id="finra-D"),
        pytest.param("B199 B142 S1 B45 S100 S200", "0", 2, id="finra-E"),
        # the cases in the brief
        pytest.param("B100 B100 S200", "0", 1, id="buy-buy-sell"),
        pytest.param("B100 S50 S50", "0", 1, id="buy-then-sell-in-two-parts"),
        # short selling, then covering
        pytest.param("S100 B100", "0", 1, id="short-then-cover"),
        pytest.param("S100 B50 S50 B50", "0", 2, id="short-cover-short-cover"),
        # positions held overnight
        pytest.param("S100", "100", 0, id="overnight-long-sold"),
        pytest.param("B100", "-100", 0, id="overnight-short-covered"),
        pytest.param("S100 B100 S100", "100", 1, id="overnight-sold-then-round-trip"),
        pytest.param("B100 S100", "100", 1, id="added-to-overnight-then-sold"),
        pytest.param("S50 S50", "100", 0, id="overnight-sold-in-parts"),
        # crossing zero: the rest of the sale opens a short the same day
        pytest.param("S150 B50", "100", 1, id="overnight-long-flipped-short-and-covered"),
        pytest.param("B100 S300 B200", "0", 2, id="long-flipped-short-and-covered"),
        # nothing closed
        pytest.param("B100 B100", "0", 0, id="buys-only"),
        pytest.param("", "0", 0, id="no-fills"),
    ],
)
def test_day_trades_are_counted_as_finra_counts_them(steps, start, expected):
    assert count_day_trades(_fills(*steps.split()), D(start)) == expected


def test_business_days_are_nyse_sessions():
    # Thanksgiving (Thu 26 Nov 2026) is no session; Friday is.
    assert business_days(date(2026, 11, 30)) == [
        date(2026, 11, 23),
        date(2026, 11, 24),
        date(2026, 11, 25),
        date(2026, 11, 27),
        date(2026, 11, 30),
    ]


@pytest.mark.parametrize(
    ("now", "trades_now", "expected"),
    [
        pytest.param(TUESDAY_OPEN, True, date(2026, 11, 24), id="open"),
        pytest.param(
            datetime(2026, 11, 24, 12, 0, tzinfo=UTC), False, date(2026, 11, 24), id="pre-market"
        ),
        pytest.param(
            datetime(2026, 11, 25, 23, 0, tzinfo=UTC),
            False,
            date(2026, 11, 27),
            id="after-close-before-a-holiday",
        ),
        pytest.param(
            datetime(2026, 11, 28, 15, 0, tzinfo=UTC), False, date(2026, 11, 30), id="saturday"
        ),
    ],
)
def test_the_trading_day_is_when_the_order_can_first_trade(now, trades_now, expected):
    assert trading_day(now, trades_now=trades_now) == expected


# --- the warning -----------------------------------------------------------------------


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    """A time in November 2026, given in UTC (New York is UTC-5)."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@pytest.mark.django_db
def test_selling_shares_bought_today_warns_of_a_day_trade(trader):
    desk = make_desk(trader, positions={"AAPL": D("10")})
    fill(desk.account, "buy", "10", _at(24, 14, 40))

    verdict = desk.validate(order(side="sell", qty=D("10")), now=TUESDAY_OPEN)

    assert verdict.valid
    assert [(w.code, w.field) for w in verdict.warnings] == [("day_trade", "side")]
    assert "1 today and 1 in the last 5 business days" in verdict.warnings[0].message


@pytest.mark.django_db
def test_the_warning_counts_the_last_five_business_days_across_symbols(trader):
    desk = make_desk(trader, positions={"AAPL": D("10")})
    fill(desk.account, "buy", "5", _at(17, 15), symbol="MSFT")  # Tue 17: outside the window
    fill(desk.account, "sell", "5", _at(17, 16), symbol="MSFT")
    fill(desk.account, "buy", "5", _at(20, 15), symbol="MSFT")  # Fri 20: one day trade
    fill(desk.account, "sell", "5", _at(20, 16), symbol="MSFT")
    fill(desk.account, "buy", "1", _at(23, 15))  # Mon 23: one day trade
    fill(desk.account, "sell", "1", _at(23, 20))
    fill(desk.account, "buy", "3", _at(24, 14, 31), symbol="NVDA")  # today: one, in NVDA
    fill(desk.account, "sell", "3", _at(24, 14, 35), symbol="NVDA")
    fill(desk.account, "buy", "10", _at(24, 14, 40))

    verdict = desk.validate(order(side="sell", qty=D("4")), now=TUESDAY_OPEN)

    assert codes(verdict.warnings) == ["day_trade"]
    assert "2 today and 4 in the last 5 business days" in verdict.warnings[0].message


@pytest.mark.django_db
def test_selling_a_position_held_overnight_is_no_day_trade(trader):
    desk = make_desk(trader, positions={"AAPL": D("10")})
    fill(desk.account, "buy", "10", _at(23, 15))

    assert desk.validate(order(side="sell", qty=D("10")), now=TUESDAY_OPEN).warnings == []


@pytest.mark.django_db
def test_a_second_sale_in_the_same_run_is_no_new_day_trade(trader):
    desk = make_desk(trader, positions={"AAPL": D("50")})
    fill(desk.account, "buy", "100", _at(24, 14, 40))
    fill(desk.account, "sell", "50", _at(24, 14, 45))

    assert desk.validate(order(side="sell", qty=D("50")), now=TUESDAY_OPEN).warnings == []


@pytest.mark.django_db
def test_covering_a_short_sold_today_warns_of_a_day_trade(trader):
    desk = make_desk(trader, positions={"AAPL": D("-5")})
    fill(desk.account, "sell", "5", _at(24, 14, 40))

    verdict = desk.validate(order(qty=D("5")), now=TUESDAY_OPEN)

    assert codes(verdict.warnings) == ["day_trade"]
    assert "sold short the same day" in verdict.warnings[0].message


@pytest.mark.django_db
def test_unfilled_orders_are_no_fills(trader):
    desk = make_desk(trader)
    desk_order(desk.account, status="canceled", filled_at=None)

    assert desk.validate(order(side="sell", qty=D("1")), now=TUESDAY_OPEN).warnings == []


def _three_earlier_day_trades(desk):
    for day in (19, 20, 23):
        fill(desk.account, "buy", "1", _at(day, 15), symbol="MSFT")
        fill(desk.account, "sell", "1", _at(day, 16), symbol="MSFT")
    fill(desk.account, "buy", "10", _at(24, 14, 40))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("pdt_rule", "cash", "expected"),
    [
        pytest.param(True, "20000", ["day_trade", "pattern_day_trader"], id="rule-on-small"),
        pytest.param(True, "100000", ["day_trade"], id="rule-on-25k-or-more"),
        pytest.param(False, "20000", ["day_trade"], id="rule-off"),
    ],
)
def test_the_legacy_pdt_warning_needs_the_setting_and_small_equity(
    trader, settings, pdt_rule, cash, expected
):
    settings.PDT_RULE = pdt_rule
    desk = make_desk(trader, positions={"AAPL": D("10")})
    SimAccount.objects.filter(account_id=desk.account.key_id).update(cash=D(cash))
    _three_earlier_day_trades(desk)

    verdict = desk.validate(order(side="sell", qty=D("10")), now=TUESDAY_OPEN)

    assert verdict.valid
    assert codes(verdict.warnings) == expected
    if "pattern_day_trader" in expected:
        assert "4th day trade in 5 business days" in verdict.warnings[1].message
        assert "$20,000.00" in verdict.warnings[1].message


@pytest.mark.django_db
def test_the_third_day_trade_gets_no_legacy_warning(trader, settings):
    settings.PDT_RULE = True
    desk = make_desk(trader, positions={"AAPL": D("10")})
    SimAccount.objects.filter(account_id=desk.account.key_id).update(cash=D("20000"))
    fill(desk.account, "buy", "1", _at(23, 15), symbol="MSFT")
    fill(desk.account, "sell", "1", _at(23, 16), symbol="MSFT")
    fill(desk.account, "buy", "10", _at(24, 14, 40))

    assert codes(desk.validate(order(side="sell", qty=D("10")), now=TUESDAY_OPEN).warnings) == [
        "day_trade"
    ]


# --- per execution -------------------------------------------------------------------


def _executions(account, side: str, qty: str, *steps: tuple[str, datetime], final: str):
    """An order of `qty` whose fills came in `steps` (cumulative filled qty, broker time)
    and which ended `final` (canceled after a partial fill never gets a filled_at)."""
    filled = D(steps[-1][0])
    placed = desk_order(
        account,
        side=side,
        qty=D(qty),
        filled_qty=filled,
        filled_avg_price=D("100"),
        status=final,
        filled_at=steps[-1][1] if final == "filled" else None,
    )
    for cumulative, at in steps:
        status = "filled" if D(cumulative) == D(qty) else "partially_filled"
        OrderEvent.objects.create(
            order=placed,
            event="fill" if status == "filled" else "partial_fill",
            status=status,
            filled_qty=D(cumulative),
            source="stream",
            at=at,
        )
    if final == "canceled":
        OrderEvent.objects.create(
            order=placed,
            event="canceled",
            status="canceled",
            filled_qty=filled,
            source="stream",
            at=steps[-1][1] + timedelta(minutes=1),
        )
    return placed


@pytest.mark.django_db
def test_a_partial_fill_of_an_order_canceled_afterwards_opens_a_day_trade(trader):
    desk = make_desk(trader, positions={"AAPL": D("10")})
    _executions(desk.account, "buy", "100", ("10", _at(24, 14, 40)), final="canceled")

    verdict = desk.validate(order(side="sell", qty=D("10")), now=TUESDAY_OPEN)

    assert codes(verdict.warnings) == ["day_trade"]
    assert "1 today and 1 in the last 5 business days" in verdict.warnings[0].message


@pytest.mark.django_db
def test_a_day_trade_completed_by_a_partial_fill_then_canceled_is_counted(trader):
    # Bought 100 today, sold 50 of a 100-share sale that was then canceled: one day trade
    # done; selling the other 50 continues the same run, no new day trade.
    desk = make_desk(trader, positions={"AAPL": D("50")})
    fill(desk.account, "buy", "100", _at(24, 14, 31))
    _executions(desk.account, "sell", "100", ("50", _at(24, 14, 35)), final="canceled")

    assert desk.validate(order(side="sell", qty=D("50")), now=TUESDAY_OPEN).warnings == []

    # Buying back and selling again is the second day trade of the day.
    fill(desk.account, "buy", "50", _at(24, 14, 38))
    desk_with_more = make_desk(trader, positions={"AAPL": D("100")})
    verdict = desk_with_more.validate(order(side="sell", qty=D("100")), now=TUESDAY_OPEN)
    assert "2 today and 2 in the last 5 business days" in verdict.warnings[0].message


@pytest.mark.django_db
def test_each_execution_is_dated_by_itself(trader):
    # 60 bought on Monday and 40 on Tuesday by one order: Tuesday's sale of 100 closes
    # Tuesday's 40 (a day trade) — and Monday's half is no day trade on Monday.
    desk = make_desk(trader, positions={"AAPL": D("100")})
    _executions(
        desk.account, "buy", "100", ("60", _at(23, 15)), ("100", _at(24, 14, 40)), final="filled"
    )
    fill(desk.account, "buy", "1", _at(23, 15, 30), symbol="MSFT")
    fill(desk.account, "sell", "1", _at(23, 16), symbol="MSFT")

    verdict = desk.validate(order(side="sell", qty=D("100")), now=TUESDAY_OPEN)

    assert "1 today and 2 in the last 5 business days" in verdict.warnings[0].message


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("position", "side", "reads"),
    [
        pytest.param("0", "buy", False, id="buy-while-flat"),
        pytest.param("10", "buy", False, id="buy-while-long"),
        pytest.param("0", "sell", False, id="sell-while-flat"),
        pytest.param("-10", "sell", False, id="sell-while-short"),
        pytest.param("10", "sell", True, id="sell-while-long"),
        pytest.param("-10", "buy", True, id="buy-while-short"),
    ],
)
def test_only_an_order_that_can_close_the_position_reads_the_fills(
    trader, monkeypatch, position, side, reads
):
    desk = make_desk(trader, positions={"AAPL": D(position)} if position != "0" else {})
    fill(desk.account, "buy", "10", _at(24, 14, 40))
    fill(desk.account, "sell", "10", _at(24, 14, 41))
    real = selectors.fills_since
    calls = []
    monkeypatch.setattr(selectors, "fills_since", lambda *a: calls.append(a) or real(*a))

    desk.validate(order(side=side, qty=D("5")), now=TUESDAY_OPEN)

    assert bool(calls) is reads


@pytest.mark.django_db
@pytest.mark.services
# In full, and after the last fill event a kept count applied (what each earlier event recorded
# beside): both through indexes.
@pytest.mark.parametrize("after_event", [None, 1], ids=["window", "after-last-applied"])
def test_the_fills_are_read_through_indexes(trader, after_event):
    require_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")
    account = trader.broker_accounts.get()
    fill(account, "buy", "10", _at(24, 14, 40))

    with CaptureQueriesContext(connection) as queries:
        selectors.fills_since(account, _at(18, 5), after_event=after_event)

    (read,) = (query["sql"] for query in queries.captured_queries)
    with connection.cursor() as cursor:
        # Tiny tables would be scanned whatever their indexes: ask what serves the read.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {read}")
        plan = " ".join(row[0] for row in cursor.fetchall())
    assert "Seq Scan" not in plan, plan
    assert "order_account_filled" in plan and plan.count("Index") >= 2, plan
