"""The ticket's confirmation step lives in the placement service: judged once, placed once."""

from decimal import Decimal

import pytest

from orders import services
from orders.models import Order
from orders.validation import OrderInput

pytestmark = pytest.mark.django_db

FAR_BELOW = OrderInput(
    symbol="AAPL",
    side="buy",
    type="limit",
    time_in_force="gtc",
    qty=Decimal("1"),
    limit_price=Decimal("1"),
)


def place(trader, **options):
    return services.place_order(
        user=trader,
        broker_account=trader.broker_accounts.get(),
        order_input=FAR_BELOW,
        **options,
    )


def test_unconfirmed_warnings_place_nothing(trader):
    with pytest.raises(services.WarningsUnconfirmed) as unconfirmed:
        place(trader, confirm_warnings=False)
    assert [w.code for w in unconfirmed.value.verdict.warnings] == ["price_far_from_market"]
    assert not Order.objects.exists()


def test_confirmed_warnings_are_placed_and_returned(trader):
    placement = place(trader, confirm_warnings=True)
    assert placement.created and placement.order.status == "new"
    assert [w.code for w in placement.verdict.warnings] == ["price_far_from_market"]
