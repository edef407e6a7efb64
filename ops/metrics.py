"""/metrics: who may read it, and what it says.

The processes' own metrics (tradedesk.metrics: summed over every process writing to
PROMETHEUS_MULTIPROC_DIR when it is set) and, read at each scrape, what lives elsewhere: the
approval queue (the database), Celery's queues (its broker) and the market-data hub's state
(its status record, shared through the cache like /healthz reads it).
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Callable, Iterable

from django.conf import settings
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from orders import selectors as order_selectors
from tradedesk.client_ip import client_address, parse_address
from tradedesk.metrics import PREFIX

from . import selectors

logger = logging.getLogger(__name__)

# The hub's states (market.stream.hub, tradedesk.broker.base), each a sample of the state gauge.
UPSTREAM_STATES = ("up", "lagging", "down", "idle", selectors.ABSENT)


class Refusal(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def check_access(request) -> None:
    """METRICS_TOKEN set: the request must carry it as `Authorization: Bearer <token>` (401
    without one, 403 for another). Unset: only loopback clients (the client address by
    TRUSTED_PROXIES' rule), 403 for others. Raises Refusal."""
    token = settings.METRICS_TOKEN
    if not token:
        address = parse_address(client_address(request))
        if address is None or not address.is_loopback:
            raise Refusal(403, "Metrics are served to loopback clients only (METRICS_TOKEN unset).")
        return
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Refusal(401, "A bearer token is required.")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Refusal(403, "Wrong token.")


def exposition(accept: str | None) -> tuple[bytes, str]:
    """The metrics in the format the scraper accepts (Prometheus text by default), and its
    content type."""
    registry = CollectorRegistry()
    registry.register(_process_metrics())
    registry.register(DeskCollector())
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def _process_metrics():
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return MultiProcessCollector(None)  # every process's files, summed
    return REGISTRY


class DeskCollector:
    """Families read at scrape time. A source that fails (the database, Redis) leaves its
    families out and sets tradedesk_scrape_failed{source}; the others still answer."""

    def collect(self) -> Iterable[Metric]:
        failed = GaugeMetricFamily(
            f"{PREFIX}_scrape_failed",
            "1 for a source /metrics could not read at this scrape.",
            labels=["source"],
        )
        for source, families in (
            ("approvals", self._approvals),
            ("celery", self._celery),
            ("stream_upstream", self._upstream),
        ):
            yield from _read(source, families, failed)
        yield failed

    @staticmethod
    def _approvals() -> list[Metric]:
        waiting = GaugeMetricFamily(
            f"{PREFIX}_approvals_waiting", "Orders waiting for an operator's approval."
        )
        oldest = GaugeMetricFamily(
            f"{PREFIX}_approvals_oldest_wait_seconds",
            "How long the longest-waiting order has waited for approval (0: none waits).",
        )
        queue = order_selectors.approval_queue_summary()
        waiting.add_metric([], queue.waiting)
        age = (timezone.now() - queue.oldest.created_at).total_seconds() if queue.oldest else 0
        oldest.add_metric([], age)
        return [waiting, oldest]

    @staticmethod
    def _celery() -> list[Metric]:
        depth = GaugeMetricFamily(
            f"{PREFIX}_celery_queue_depth",
            "Tasks waiting in each Celery queue.",
            labels=["queue"],
        )
        for name, count in sorted(selectors.celery_queue_depths().items()):
            depth.add_metric([name], count)
        return [depth]

    @staticmethod
    def _upstream() -> list[Metric]:
        state = GaugeMetricFamily(
            f"{PREFIX}_stream_upstream_state",
            "The market-data hub's upstream connection: 1 for its current state (absent: no "
            "hub reports).",
            labels=["state"],
        )
        reconnects = CounterMetricFamily(
            f"{PREFIX}_stream_upstream_reconnects",
            "Upstream failures the running hub retried since it started.",
        )
        upstream = selectors.upstream_state()
        for name in dict.fromkeys((*UPSTREAM_STATES, upstream["state"])):
            state.add_metric([name], 1 if name == upstream["state"] else 0)
        reconnects.add_metric([], upstream["reconnects"])
        return [state, reconnects]


def _read(
    source: str, families: Callable[[], list[Metric]], failed: GaugeMetricFamily
) -> list[Metric]:
    try:
        read = families()
    except Exception:
        logger.exception("metrics: could not read %s", source)
        failed.add_metric([source], 1)
        return []
    failed.add_metric([source], 0)
    return read
