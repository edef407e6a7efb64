"""The API's order body parser builds its fields once per process (FieldsBuiltOnce): each
parse is still its own, and a parser given a context or partial=True builds its own fields."""

from __future__ import annotations

from decimal import Decimal

from orders.serializers import OrderBodySerializer, OrderTemplateBodySerializer


def test_parses_share_the_fields_but_nothing_of_each_others_bodies():
    good = OrderBodySerializer(data={"symbol": "aapl", "qty": "2", "side": "buy", "type": "market"})
    bad = OrderBodySerializer(data={"symbol": "MSFT", "side": "buy"})
    assert good.fields is bad.fields
    assert good.is_valid(), good.errors
    assert not bad.is_valid()
    assert set(bad.errors) == {"type"}
    unknown = OrderBodySerializer(data={**good.initial_data, "typo": 1})
    assert not unknown.is_valid() and set(unknown.errors) == {"typo"}
    order = good.to_order_input()
    assert (order.symbol, order.qty, order.time_in_force) == ("AAPL", Decimal("2"), "day")
    again = OrderBodySerializer(
        data={"symbol": "T", "notional": "5", "side": "sell", "type": "market"}
    )
    assert again.is_valid(), again.errors
    assert again.to_order_input().qty is None and good.to_order_input().qty == Decimal("2")


def test_a_partial_or_contextual_parser_builds_its_own_fields(trader):
    shared = OrderBodySerializer(data={}).fields
    partial = OrderTemplateBodySerializer(data={"qty": "3"}, partial=True, context={"user": trader})
    assert partial.fields is not shared
    assert partial.is_valid(), partial.errors  # partial: the missing fields are not required
    whole = OrderTemplateBodySerializer(data={"qty": "3"}, context={"user": trader})
    assert not whole.is_valid() and "symbol" in whole.errors
