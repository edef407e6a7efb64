"""Recording executions once each, and account snapshots with their roll-up by age."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, Max, OuterRef, Subquery
from django.utils import timezone

from accounts.models import BrokerAccount
from accounts.services import broker_for
from orders.models import Order, OrderEvent
from tradedesk.broker import calendar, types
from tradedesk.broker.errors import BrokerError

from .models import AccountSnapshot, FeeCharge, Fill

logger = logging.getLogger(__name__)

# A sync asks the broker for executions since the newest one recorded, less this much: one
# the stream missed may carry an earlier time than one it delivered.
FILL_SYNC_OVERLAP = timedelta(days=1)
# Fees come as one charge per trading day (Alpaca's, at its end): a sync asks again for the
# days before the newest recorded, for a charge posted late.
FEE_SYNC_OVERLAP = timedelta(days=5)
# Alpaca's fee sub-types charged on sells only (SEC's REG, FINRA's TAF); REG is a rate on the
# proceeds, the others (TAF, CAT) on shares.
SELL_ONLY_FEES = frozenset({"REG", "TAF"})
PROCEEDS_FEES = frozenset({"REG"})
FEE_QUANTUM = Decimal("1e-9")  # Fill.fee's decimal places


def _save_fills(fills: list[Fill]) -> int:
    """Insert, skipping executions already recorded (ON CONFLICT DO NOTHING on the unique
    account + execution id): exactly once however often, and however concurrently, they come.
    Returns how many were new."""
    if not fills:
        return 0
    account_ids = {fill.broker_account_id for fill in fills}
    before = Fill.objects.filter(broker_account_id__in=account_ids).count()
    Fill.objects.bulk_create(fills, ignore_conflicts=True, batch_size=1000)
    return Fill.objects.filter(broker_account_id__in=account_ids).count() - before


def record_fills_from_events(*, order_ids: list[int] | None = None, source: str = "stream") -> int:
    """A Fill for each execution event of these orders (every order's when None)."""
    executions = OrderEvent.objects.filter(
        event__in=types.EXECUTION_EVENTS, qty__gt=0, price__isnull=False
    ).exclude(execution_id="")
    if order_ids is not None:
        executions = executions.filter(order_id__in=order_ids)
    rows = executions.values(
        "order_id",
        "execution_id",
        "qty",
        "price",
        "at",
        broker_account_id=F("order__broker_account_id"),
        broker_order_id=F("order__broker_order_id"),
        symbol=F("order__symbol"),
        side=F("order__side"),
    )
    return _save_fills(
        [
            Fill(source=source, **row)
            for row in rows.iterator(chunk_size=2000)
            if row["side"] in ("buy", "sell")
        ]
    )


def execution_id_of(activity: types.FillActivity) -> str:
    """The execution id a FILL activity stands for: Alpaca's activity ids are
    "<time>::<execution id>" (the trade update's execution_id); the paper exchange's are the id."""
    return activity.id.rsplit("::", 1)[-1]


def sync_fills(*, broker_account: BrokerAccount, full: bool = False) -> int:
    """Record the account's executions the broker lists that the desk lacks (the stream missed
    them, or they predate it): all of them when `full`, else from the newest recorded less an
    overlap. Then the fees it charged (`sync_fees`). Returns how many executions were new."""
    after = None
    if not full:
        newest = broker_account.fills.aggregate(newest=Max("at"))["newest"]
        after = newest - FILL_SYNC_OVERLAP if newest else None
    activities = list(broker_for(broker_account).iter_fill_activities(after=after, direction="asc"))
    order_ids = dict(
        Order.objects.filter(
            broker_account=broker_account,
            broker_order_id__in={activity.order_id for activity in activities},
        ).values_list("broker_order_id", "pk")
    )
    recorded = _save_fills(
        [
            Fill(
                broker_account=broker_account,
                order_id=order_ids.get(activity.order_id),
                broker_order_id=activity.order_id,
                execution_id=execution_id_of(activity),
                symbol=activity.symbol,
                side=activity.side,
                qty=activity.qty,
                price=activity.price,
                at=activity.transaction_time,
                source="activity",
            )
            for activity in activities
            if activity.qty > 0 and activity.side in ("buy", "sell")
        ]
    )
    sync_fees(broker_account=broker_account, full=full)
    return recorded


def sync_fees(*, broker_account: BrokerAccount, full: bool = False) -> int:
    """Record the fees the broker charged the account (each activity once; a canceled one
    not), all of them when `full`, else from the newest recorded day less an overlap; then
    attach every fee not yet attached. Returns how many fees were attached now."""
    after = None
    if not full:
        newest = broker_account.fee_charges.aggregate(newest=Max("date"))["newest"]
        after = datetime.combine(newest - FEE_SYNC_OVERLAP, time(), UTC) if newest else None
    activities = broker_for(broker_account).iter_fee_activities(after=after, direction="asc")
    FeeCharge.objects.bulk_create(
        [
            FeeCharge(
                broker_account=broker_account,
                activity_id=activity.id,
                activity_type=activity.activity_type,
                sub_type=activity.sub_type,
                date=activity.date,
                amount=activity.amount,
                symbol=activity.symbol,
                broker_order_id=activity.order_id,
                description=activity.description,
            )
            for activity in activities
            if activity.status != "canceled" and activity.amount
        ],
        ignore_conflicts=True,
    )
    return attach_fees(broker_account=broker_account)


def attach_fees(*, broker_account: BrokerAccount) -> int:
    """Add each unattached fee of the account to the fills it was charged for, exactly once:
    the fee row is locked and marked in the same transaction as the fills' fees grow.

    A fee with an order id belongs to that order's fills. Without one (Alpaca's daily REG, TAF
    and CAT charges name no execution) it belongs to the account's fills of its trading day
    (`date`, on the market's clock), of its symbol when it names one, sells only for REG and
    TAF. It is split over them by shares (REG: by proceeds); the last fill takes the rounding.
    A fee no recorded fill matches stays unattached and is tried again by the next sync.
    """
    attached = 0
    pending = broker_account.fee_charges.filter(attached_at__isnull=True)
    for pk in pending.order_by("date", "pk").values_list("pk", flat=True):
        with transaction.atomic():
            charge = pending.select_for_update().filter(pk=pk).first()
            if charge is None:
                continue  # a concurrent sync attached it
            fills = list(_fills_charged(charge).select_for_update().order_by("at", "pk"))
            if not fills:
                continue
            for fill, share in zip(fills, _fee_shares(charge, fills), strict=True):
                fill.fee += share  # the rows are locked: no one else adds meanwhile
            Fill.objects.bulk_update(fills, ["fee"])
            charge.fill_count, charge.attached_at = len(fills), timezone.now()
            charge.save(update_fields=["fill_count", "attached_at"])
            attached += 1
    return attached


def _fills_charged(charge: FeeCharge):
    fills = Fill.objects.filter(broker_account_id=charge.broker_account_id)
    if charge.broker_order_id:
        return fills.filter(broker_order_id=charge.broker_order_id)
    zone = calendar.market_zone()
    fills = fills.filter(
        at__gte=datetime.combine(charge.date, time(), zone),
        at__lt=datetime.combine(charge.date + timedelta(days=1), time(), zone),
    )
    if charge.symbol:
        fills = fills.filter(symbol=charge.symbol)
    if charge.sub_type in SELL_ONLY_FEES:
        fills = fills.filter(side="sell")
    return fills


def _fee_shares(charge: FeeCharge, fills: list[Fill]) -> list[Decimal]:
    weights = [f.qty * f.price if charge.sub_type in PROCEEDS_FEES else f.qty for f in fills]
    total = sum(weights)
    parts = [(charge.amount * weight / total).quantize(FEE_QUANTUM) for weight in weights[:-1]]
    return [*parts, charge.amount - sum(parts)]


def link_fills_to_orders() -> int:
    """Attach fills recorded before their order was synced (matched by broker order id)."""
    order = Order.objects.filter(
        broker_account_id=OuterRef("broker_account_id"), broker_order_id=OuterRef("broker_order_id")
    ).values("pk")[:1]
    unlinked = Fill.objects.filter(order__isnull=True).exclude(broker_order_id="")
    return unlinked.filter(Exists(order)).update(order_id=Subquery(order))


def sync_all_fills() -> int:
    """Every active account's missed executions; a failing broker is logged and skipped."""
    recorded = 0
    for account in BrokerAccount.objects.filter(is_active=True):
        try:
            recorded += sync_fills(broker_account=account)
        except BrokerError as failure:
            logger.warning("fills of broker account %s unavailable: %s", account.pk, failure)
    link_fills_to_orders()
    return recorded


# --- snapshots ------------------------------------------------------------------


def snapshot_accounts(*, at: datetime | None = None) -> int:
    """One snapshot per active account; also its session close, when one passed since the
    account's last close snapshot (the tick after the bell records it at the close's time)."""
    at = at or timezone.now()
    last_close = calendar.previous_close(at)
    closes = dict(
        AccountSnapshot.objects.filter(kind="close")
        .values("broker_account_id")
        .annotate(last=Max("at"))
        .values_list("broker_account_id", "last")
    )
    rows = []
    for account in BrokerAccount.objects.filter(is_active=True):
        try:
            info = broker_for(account).get_account()
        except BrokerError as failure:
            logger.warning("account %s unavailable for a snapshot: %s", account.pk, failure)
            continue
        values = {
            "broker_account": account,
            "equity": info.equity,
            "cash": info.cash,
            "long_market_value": info.long_market_value,
            "short_market_value": info.short_market_value,
        }
        rows.append(AccountSnapshot(at=at, kind="tick", **values))
        recorded = closes.get(account.pk)
        if recorded is None or recorded < last_close:
            rows.append(AccountSnapshot(at=last_close, kind="close", **values))
    AccountSnapshot.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def roll_up_snapshots(*, now: datetime | None = None) -> int:
    """Keep the last tick of each hour after SNAPSHOT_HOURLY_AFTER_DAYS, and of each day after
    SNAPSHOT_DAILY_AFTER_DAYS (marked `rollup`); session closes stay. Returns rows deleted."""
    now = now or timezone.now()
    deleted = 0
    for older_than, bucket in (
        (now - timedelta(days=settings.SNAPSHOT_DAILY_AFTER_DAYS), 86400),
        (now - timedelta(days=settings.SNAPSHOT_HOURLY_AFTER_DAYS), 3600),
    ):
        with transaction.atomic():
            ticks = AccountSnapshot.objects.filter(at__lt=older_than).exclude(kind="close")
            keep: dict[tuple[int, int], int] = {}
            for pk, account_id, at in ticks.order_by("at", "pk").values_list(
                "pk", "broker_account_id", "at"
            ):
                keep[(account_id, int(at.timestamp()) // bucket)] = pk
            kept = set(keep.values())
            doomed = [pk for pk in ticks.values_list("pk", flat=True) if pk not in kept]
            for start in range(0, len(doomed), 5000):
                deleted += AccountSnapshot.objects.filter(
                    pk__in=doomed[start : start + 5000]
                ).delete()[0]
            AccountSnapshot.objects.filter(pk__in=kept, kind="tick").update(kind="rollup")
    return deleted
