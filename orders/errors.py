"""What placing an order can raise besides the broker's own errors: the gate's refusal, the
confirmation it asks for, a reused client_order_id, a submission the broker left unanswered.
Raised by the services, read by metrics (which services use, so they live apart from both)."""

from __future__ import annotations

from tradedesk.broker.errors import BrokerUnavailable

from .models import Order
from .validation import Verdict


class OrderInvalid(Exception):
    def __init__(self, verdict: Verdict):
        super().__init__("invalid order")
        self.verdict = verdict


class WarningsUnconfirmed(Exception):
    """The order is valid but has warnings the trader hasn't confirmed (the ticket page asks)."""

    def __init__(self, verdict: Verdict):
        super().__init__("warnings need confirmation")
        self.verdict = verdict


class IdempotencyConflict(Exception):
    """The client_order_id is already used by a different order."""


class SubmissionPending(BrokerUnavailable):
    """The broker went silent during submission: the order is kept pending, never resubmitted.

    A later look-up by client_order_id (a repeated POST, or the next sync) resolves it.
    """

    def __init__(self, order: Order, cause: BrokerUnavailable):
        super().__init__(cause.message, code=cause.code)
        self.order = order
