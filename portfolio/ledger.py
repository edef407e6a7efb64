"""Tax lots and closed round trips from an account's executions: a pure function of the fills.

Fills are matched per broker account and symbol, in time order, against the open lots by
`LOT_METHOD`. A buy first covers short lots, a sell first closes long lots; what is left opens
a lot. The executions that close lots are grouped into one round trip per closing order,
where the fills of a replace chain count as one order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

LOT_METHODS = ("fifo", "lifo", "highest_cost")
ZERO = Decimal("0")


# Plain slotted classes: a read builds one per fill (100,000s), frozen ones cost twice as much.
@dataclass(slots=True)
class Execution:
    account_id: int
    order_key: str  # the replace chain's first order: fills of a chain close as one order
    symbol: str
    side: str  # buy | sell
    qty: Decimal
    price: Decimal
    fee: Decimal
    at: datetime
    id: int = 0


@dataclass(slots=True)
class Lot:
    account_id: int
    symbol: str
    qty: Decimal  # negative: a short lot
    price: Decimal
    fee_per_share: Decimal
    acquired_at: datetime
    seq: int  # acquisition order (ties in time keep the fills' order)
    fill_id: int = 0  # the execution that opened it


@dataclass
class RoundTrip:
    account_id: int
    symbol: str
    direction: str  # long | short
    qty: Decimal = ZERO
    cost: Decimal = ZERO  # entry value (qty x entry price, summed)
    proceeds: Decimal = ZERO  # exit value
    fees: Decimal = ZERO
    opened_at: datetime | None = None
    closed_at: datetime | None = None

    @property
    def entry_price(self) -> Decimal:
        return self.cost / self.qty

    @property
    def exit_price(self) -> Decimal:
        return self.proceeds / self.qty

    @property
    def realized_pl(self) -> Decimal:
        gross = self.proceeds - self.cost if self.direction == "long" else self.cost - self.proceeds
        return gross - self.fees

    @property
    def realized_pl_pct(self) -> Decimal:
        return self.realized_pl / self.cost if self.cost else ZERO

    @property
    def holding_days(self) -> Decimal:
        return Decimal((self.closed_at - self.opened_at).total_seconds()) / 86400


@dataclass
class Ledger:
    lots: list[Lot] = field(default_factory=list)
    round_trips: list[RoundTrip] = field(default_factory=list)


def _closing_order(lots: list[Lot], method: str) -> list[Lot]:
    if method == "lifo":
        return sorted(lots, key=lambda lot: lot.seq, reverse=True)
    if method == "highest_cost":
        # The lot whose close realizes the least gain: the dearest long, the cheapest short.
        return sorted(lots, key=lambda lot: (-lot.price if lot.qty > 0 else lot.price, lot.seq))
    return lots  # fifo: kept in acquisition order


def build(executions: Iterable[Execution], method: str = "fifo") -> Ledger:
    """Lots still open and round trips closed, after every execution (any order given)."""
    if method not in LOT_METHODS:
        raise ValueError(f"unknown lot method {method!r}")
    open_lots: dict[tuple[int, str], list[Lot]] = defaultdict(list)
    trips: dict[tuple, RoundTrip] = {}
    seq = 0
    for fill in sorted(executions, key=lambda f: (f.at, f.id)):
        key = (fill.account_id, fill.symbol)
        signed = fill.qty if fill.side == "buy" else -fill.qty
        fee_per_share = fill.fee / fill.qty
        lots = open_lots[key]
        remaining = abs(signed)
        if lots and (lots[0].qty > 0) != (signed > 0):
            direction = "long" if lots[0].qty > 0 else "short"
            trip = trips.setdefault(
                (fill.account_id, fill.symbol, fill.order_key, direction),
                RoundTrip(fill.account_id, fill.symbol, direction),
            )
            for lot in _closing_order(list(lots), method):
                if remaining == 0:
                    break
                take = min(remaining, abs(lot.qty))
                trip.qty += take
                trip.cost += take * lot.price
                trip.proceeds += take * fill.price
                trip.fees += take * (lot.fee_per_share + fee_per_share)
                trip.opened_at = min(filter(None, (trip.opened_at, lot.acquired_at)))
                trip.closed_at = max(filter(None, (trip.closed_at, fill.at)))
                lot.qty += take if lot.qty < 0 else -take
                remaining -= take
            lots[:] = [lot for lot in lots if lot.qty != 0]
        if remaining:
            seq += 1
            lots.append(
                Lot(
                    account_id=fill.account_id,
                    symbol=fill.symbol,
                    qty=remaining if signed > 0 else -remaining,
                    price=fill.price,
                    fee_per_share=fee_per_share,
                    acquired_at=fill.at,
                    seq=seq,
                    fill_id=fill.id,
                )
            )
    return Ledger(
        lots=[lot for lots in open_lots.values() for lot in lots],
        round_trips=sorted(trips.values(), key=lambda trip: (trip.closed_at, trip.symbol)),
    )
