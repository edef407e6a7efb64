"""Paging through more orders than one GET /v2/orders returns, around alpaca-py's µs trap."""

from __future__ import annotations

from tradedesk.broker.alpaca import AlpacaBroker

from .alpaca_fakes import EPOCH_NS, FakeAlpacaREST


def seed(fake: FakeAlpacaREST, nanoseconds: list[int]) -> list[str]:
    return [fake.add_order(submitted_ns=ns)["id"] for ns in nanoseconds]


def test_iter_all_orders_pages_past_500_with_nanosecond_times(broker: AlpacaBroker, fake_alpaca):
    # Sub-microsecond parts on every order: the times alpaca-py parses are truncated.
    ids = seed(fake_alpaca, [EPOCH_NS + i * 1_000_123 + 789 for i in range(1200)])
    got = [order.id for order in broker.iter_all_orders()]
    assert got == ids
    assert len(fake_alpaca.requests_to("GET", "/v2/orders")) == 3


def test_iter_all_orders_keeps_orders_sharing_the_boundary_time(broker, fake_alpaca):
    # Batches of 7 orders at one identical nanosecond, so page edges fall inside a batch,
    # plus batches that differ only below the microsecond.
    times = [EPOCH_NS + (i // 7) * 1_000_000 + (i % 7 // 3) * 250 for i in range(1200)]
    ids = seed(fake_alpaca, times)
    got = [order.id for order in broker.iter_all_orders(page_size=100)]
    assert sorted(got) == sorted(ids) and len(got) == len(set(got)) == 1200


def test_iter_all_orders_from_a_point_in_time(broker, fake_alpaca):
    seed(fake_alpaca, [EPOCH_NS + i * 1_000_000 for i in range(10)])
    orders = broker.list_orders(limit=4)
    later = [order.id for order in broker.iter_all_orders(after=orders[-1].submitted_at)]
    assert later == [o.id for o in broker.list_orders()[4:]]


def test_naive_after_paging_would_repeat_the_last_order(broker, fake_alpaca):
    """The trap iter_all_orders avoids: Alpaca keeps the nanoseconds alpaca-py drops."""
    ids = seed(fake_alpaca, [EPOCH_NS + i * 1_000_000_000 + 999 for i in range(3)])
    first = broker.list_orders(limit=2)
    again = broker.list_orders(limit=2, after=first[-1].submitted_at)
    assert [o.id for o in again] == ids[1:]  # the page's last order, once more
    assert [o.id for o in broker.iter_all_orders(page_size=2)] == ids


def test_iter_all_orders_passes_filters(broker, fake_alpaca):
    seed(fake_alpaca, [EPOCH_NS + i for i in range(3)])
    fake_alpaca.add_order(symbol="MSFT", submitted_ns=EPOCH_NS + 10)
    assert {o.symbol for o in broker.iter_all_orders(symbols=["MSFT"])} == {"MSFT"}
    assert fake_alpaca.requests_to("GET", "/v2/orders")[-1].query["symbols"] == "MSFT"
