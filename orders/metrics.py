"""What the orders app records in tradedesk.metrics: each placement's latency and outcome, the
gate's refusals by code, each finished sync run. Decorators, so the services they measure
stay as they are.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

from accounts.services import SecondFactorRequired
from tradedesk import metrics, ratelimit
from tradedesk.broker.errors import BrokerUnavailable, RateLimited

from .errors import IdempotencyConflict, OrderInvalid, SubmissionPending, WarningsUnconfirmed
from .models import PENDING_APPROVAL, SyncRun

# A placed order's status as an outcome; any other status (the broker's to add) is accepted,
# so the label keeps a bounded set of values.
_OUTCOME_OF_STATUS = {
    "filled": "filled",
    "partially_filled": "partially_filled",
    PENDING_APPROVAL: "pending_approval",
}
RATE_LIMITED = "rate_limited"


def placement_outcome(result=None, error: BaseException | None = None) -> str:
    """What became of a place_order call: its Placement, or what it raised."""
    if error is None:
        if not result.created:
            return "repeat"  # the same client_order_id again: the first order's answer
        return _OUTCOME_OF_STATUS.get(result.order.status, "accepted")
    if isinstance(error, OrderInvalid):
        codes = {issue.code for issue in error.verdict.errors}
        return "broker_rejected" if "broker_rejected" in codes else "refused"
    if isinstance(error, ratelimit.RateLimitExceeded | SecondFactorRequired):
        return "refused"
    if isinstance(error, WarningsUnconfirmed):
        return "unconfirmed"
    if isinstance(error, SubmissionPending):
        return "broker_pending"  # kept pending: the broker went silent, it is looked up
    if isinstance(error, BrokerUnavailable | RateLimited):
        return "broker_error"
    if isinstance(error, IdempotencyConflict):
        return "conflict"
    return "error"


def timed_placement(place: Callable) -> Callable:
    """Observe place_order's latency by the account's provider and the outcome."""

    @functools.wraps(place)
    def timed(*args, **kwargs):
        broker = kwargs["broker_account"].provider
        started = time.perf_counter()
        try:
            result = place(*args, **kwargs)
        except Exception as error:
            _observe_placement(broker, placement_outcome(error=error), started)
            raise
        _observe_placement(broker, placement_outcome(result), started)
        return result

    return timed


def _observe_placement(broker: str, outcome: str, started: float) -> None:
    metrics.ORDER_PLACEMENT_SECONDS.labels(broker=broker, outcome=outcome).observe(
        time.perf_counter() - started
    )


def refusal_codes(error: BaseException) -> list[str]:
    """The codes of a gate refusal: each error of a refused verdict, the rate limit's, the
    second factor's; [] for what is no refusal."""
    if isinstance(error, OrderInvalid):
        return [issue.code for issue in error.verdict.errors]
    if isinstance(error, ratelimit.RateLimitExceeded):
        return [RATE_LIMITED]
    if isinstance(error, SecondFactorRequired):
        return [error.code]
    return []


def counted_refusals(gate: Callable) -> Callable:
    """Count each code of every refusal the gate raises, by its command."""

    @functools.wraps(gate)
    def counted(*args, **kwargs):
        try:
            return gate(*args, **kwargs)
        except Exception as error:
            for code in refusal_codes(error):
                metrics.GATE_REFUSALS.labels(command=kwargs["command"], code=code).inc()
            raise

    return counted


def record_sync_run(run: SyncRun) -> None:
    """A run that just finished: its outcome, its rows, and how long it took."""
    metrics.SYNC_RUNS.labels(outcome=run.status).inc()
    for kind in metrics.SYNC_ROW_KINDS:
        metrics.SYNC_ROWS.labels(kind=kind).inc(getattr(run, kind))
    if run.started_at is not None and run.finished_at is not None:
        metrics.SYNC_DURATION_SECONDS.labels(outcome=run.status).observe(
            (run.finished_at - run.started_at).total_seconds()
        )
