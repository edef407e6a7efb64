"""What the portfolio does when orders announces executions (connected in apps.ready)."""

from __future__ import annotations

from . import services


def record_executions(sender, *, broker_account_id: int, order_ids: list[int], **kwargs) -> None:
    services.record_fills_from_events(order_ids=order_ids, source="stream")
