"""Order validation: one function used by the API, the pages and the admin.

validate_order returns a Verdict of errors, warnings and recommendations, each with a
stable code, the field it concerns and a message a trader understands. Checks run
cheapest first and stop at the first hard error.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from decimal import Decimal

from django.conf import settings

from tradedesk.broker import Broker, types
from tradedesk.broker.errors import OrderRejected

SYMBOL_RE = re.compile(r"^[A-Z]{1,5}(\.[A-Z]{1,2})?$")
# Fields a client may send in an order body (the API's and the ticket's names).
ORDER_FIELDS = (
    "symbol",
    "qty",
    "notional",
    "side",
    "type",
    "time_in_force",
    "limit_price",
    "stop_price",
    "trail_price",
    "trail_percent",
    "extended_hours",
    "client_order_id",
    "order_class",
    "take_profit",
    "stop_loss",
)


@dataclass(frozen=True)
class Issue:
    code: str
    field: str | None
    message: str


@dataclass
class Verdict:
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    recommendations: list[Issue] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict:
        return {
            "valid": self.valid,
            "errors": [asdict(issue) for issue in self.errors],
            "warnings": [asdict(issue) for issue in self.warnings],
            "recommendations": [asdict(issue) for issue in self.recommendations],
        }


@dataclass(frozen=True)
class OrderInput:
    """A client's order, parsed (types checked) but not yet judged."""

    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    extended_hours: bool = False
    client_order_id: str = ""
    order_class: str = "simple"
    take_profit: types.LegRequest | None = None
    stop_loss: types.LegRequest | None = None

    def to_request(self, client_order_id: str) -> types.OrderRequest:
        values = {name: getattr(self, name) for name in ORDER_FIELDS}
        values["client_order_id"] = client_order_id
        return types.OrderRequest(**values)


class _Stop(Exception):
    """A hard error: later checks would only repeat or confuse it."""


def _quantity(order: OrderInput, verdict: Verdict) -> None:
    if (order.qty is None) == (order.notional is None):
        verdict.errors.append(
            Issue(
                "qty_or_notional", "qty", "Give either a quantity or a notional amount, not both."
            )
        )
        raise _Stop
    amount_field = "qty" if order.qty is not None else "notional"
    amount = order.qty if order.qty is not None else order.notional
    if amount <= 0:
        verdict.errors.append(Issue("not_positive", amount_field, "Must be greater than zero."))
        raise _Stop
    if order.qty is not None and order.qty > settings.MAX_ORDER_QUANTITY:
        verdict.errors.append(
            Issue(
                "max_order_quantity",
                "qty",
                f"Quantity is above the desk's limit of {settings.MAX_ORDER_QUANTITY} shares.",
            )
        )
        raise _Stop


def _symbol(order: OrderInput, broker: Broker, verdict: Verdict) -> types.Asset:
    if not SYMBOL_RE.match(order.symbol):
        verdict.errors.append(Issue("invalid_symbol", "symbol", "Use a ticker like AAPL or BRK.B."))
        raise _Stop
    try:
        asset = broker.get_asset(order.symbol)
    except OrderRejected:
        verdict.errors.append(
            Issue("unknown_symbol", "symbol", f"{order.symbol} is not a known asset.")
        )
        raise _Stop from None
    if not asset.tradable:
        verdict.errors.append(
            Issue("not_tradable", "symbol", f"{order.symbol} is not tradable right now.")
        )
        raise _Stop
    return asset


def _choice(value: str, allowed, field_name: str, verdict: Verdict) -> None:
    if value not in allowed:
        verdict.errors.append(
            Issue("invalid_choice", field_name, f"Must be one of: {', '.join(allowed)}.")
        )
        raise _Stop


def _prices(order: OrderInput, verdict: Verdict) -> None:
    if order.type == "limit" and order.limit_price is None:
        verdict.errors.append(
            Issue("required", "limit_price", "A limit order needs a limit price.")
        )
        raise _Stop
    for name in ("limit_price", "stop_price"):
        price = getattr(order, name)
        if price is not None and price <= 0:
            verdict.errors.append(Issue("not_positive", name, "Must be greater than zero."))
            raise _Stop


def validate_order(
    order: OrderInput, *, broker: Broker, user=None, broker_account=None, now=None
) -> Verdict:
    verdict = Verdict()
    try:
        _quantity(order, verdict)
        _symbol(order, broker, verdict)
        _choice(order.side, types.ORDER_SIDES, "side", verdict)
        _choice(order.type, types.ORDER_TYPES, "type", verdict)
        _choice(order.time_in_force, types.TIME_IN_FORCE, "time_in_force", verdict)
        _prices(order, verdict)
    except _Stop:
        pass
    return verdict
