"""Numbers on the pages as a trader writes them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.template import Context, Template

from conftest import place_resting_buy


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal("100.000000000"), "100"),
        (Decimal("2.500000000"), "2.5"),
        (Decimal("0.000100000"), "0.0001"),
        (Decimal("0E-9"), "0"),
        ("7.10", "7.1"),
        (None, ""),
        ("n/a", "n/a"),
    ],
)
def test_plain_drops_the_storage_padding_and_never_shows_an_exponent(value, shown):
    assert Template("{{ value|plain }}").render(Context({"value": value})) == shown


@pytest.mark.django_db
def test_an_order_of_100_shares_reads_100_on_its_page(client, trader):
    order = place_resting_buy(trader)
    order.qty = Decimal("100")
    order.save()
    client.force_login(trader)

    page = client.get(f"/orders/{order.pk}/").content.decode()

    assert "Buy 100 AAPL" in page
    assert "1E+2" not in page
