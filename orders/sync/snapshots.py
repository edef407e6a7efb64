"""Position snapshots: every active broker account's positions, recorded on a schedule."""

from __future__ import annotations

import logging
from datetime import datetime

from django.utils import timezone

from accounts.models import BrokerAccount
from accounts.services import broker_for
from tradedesk.broker.errors import BrokerError

from ..models import PositionSnapshot

logger = logging.getLogger(__name__)


def snapshot_positions(*, at: datetime | None = None) -> int:
    """One PositionSnapshot per position of every active account, written in one batch.

    An account whose broker fails is logged and left out of this run (the next run catches
    up); the others are still recorded. Returns the number of rows written.
    """
    at = at or timezone.now()
    snapshots = []
    accounts = BrokerAccount.objects.filter(is_active=True).select_related("user")
    for account in accounts:
        try:
            positions = broker_for(account).list_positions()
        except BrokerError as failure:
            logger.warning("positions of broker account %s unavailable: %s", account.pk, failure)
            continue
        snapshots.extend(
            PositionSnapshot(
                user_id=account.user_id,
                broker_account=account,
                symbol=position.symbol,
                qty=position.qty,
                side=position.side,
                avg_entry_price=position.avg_entry_price,
                current_price=position.current_price,
                market_value=position.market_value,
                cost_basis=position.cost_basis,
                unrealized_pl=position.unrealized_pl,
                unrealized_plpc=position.unrealized_plpc,
                snapshot_at=at,
            )
            for position in positions
        )
    PositionSnapshot.objects.bulk_create(snapshots)
    return len(snapshots)
