"""The order API's parse and reply, made cheaper: the body parser builds its fields once per
process (FieldsBuiltOnce: each parse is still its own, a parser given a context or
partial=True builds its own fields), and the order's reply reads its columns directly
(ColumnsRead: what DRF's to_representation would show)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework import serializers

from orders.models import Order
from orders.serializers import (
    OrderBodySerializer,
    OrderDetailSerializer,
    OrderEventSerializer,
    OrderTemplateBodySerializer,
    order_detail,
)


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


@pytest.mark.django_db
def test_the_reply_reads_columns_directly_and_shows_what_drf_would(api):
    placed = api.post(
        "/api/v1/orders/",
        {"symbol": "AAPL", "qty": "2", "side": "buy", "type": "limit", "limit_price": "1.25"},
        format="json",
    )
    assert placed.status_code == 201, placed.content
    order = Order.objects.prefetch_related("events").get(pk=placed.json()["order"]["id"])
    drf = serializers.Serializer.to_representation
    expected = drf(OrderDetailSerializer(), order)
    expected["events"] = [drf(OrderEventSerializer(), event) for event in order.events.all()]
    assert order_detail(order) == expected == placed.json()["order"]
    assert expected["notional"] is None and expected["qty"] == "2.000000000"
    assert expected["broker_account"] == order.broker_account_id
