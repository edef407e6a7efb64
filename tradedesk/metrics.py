"""The desk's Prometheus metrics: every app records into these objects, /metrics (the ops app)
exposes them.

Under gunicorn, daphne and Celery each process counts for itself; with
PROMETHEUS_MULTIPROC_DIR set (before prometheus_client is first imported: it chooses its value
store at import) every process writes to files there and /metrics sums them
(prometheus_client's multiprocess mode). Gauges say how their processes' values combine.

What lives elsewhere and is read when scraped (approvals waiting, the Celery queues, the
market-data hub's state) is collected by ops.collectors, not kept here.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PREFIX = "tradedesk"

ORDER_PLACEMENT_SECONDS = Histogram(
    f"{PREFIX}_order_placement_seconds",
    "Time to place an order (the gate, the record and the broker's answer), by the broker "
    "account's provider and the outcome.",
    ["broker", "outcome"],
)
GATE_REFUSALS = Counter(
    f"{PREFIX}_gate_refusals",
    "Commands the risk gate refused, one per error code of the refusal (the kill switch's, "
    "the rate limit's, the validation's), by command (place, replace, approve).",
    ["command", "code"],
)
SYNC_RUNS = Counter(
    f"{PREFIX}_sync_runs",
    "Order sync runs finished, by outcome (done, skipped, failed).",
    ["outcome"],
)
SYNC_ROWS = Counter(
    f"{PREFIX}_sync_rows",
    "Orders a finished sync run went through, by what it did to them (created, updated, "
    "unchanged).",
    ["kind"],
)
SYNC_DURATION_SECONDS = Histogram(
    f"{PREFIX}_sync_duration_seconds",
    "Time from a sync run's start to its end, by outcome.",
    ["outcome"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
# livesum: the open connections of the processes alive now (a dead process's are gone).
STREAM_CONNECTIONS = Gauge(
    f"{PREFIX}_stream_connections",
    "Open market-data stream connections.",
    multiprocess_mode="livesum",
)
STREAM_LAGGING = Counter(
    f"{PREFIX}_stream_lagging",
    "`lagging` notices sent on the stream: slow_client (a connection that reads too slowly "
    "lost its oldest trades and bars), server_behind (a process widened every connection's "
    "frames because its turns came late).",
    ["reason"],
)
STREAM_SLOW_CLOSES = Counter(
    f"{PREFIX}_stream_slow_closes",
    "Stream connections closed with 1013 (try again later) for staying over their queue limit.",
)

# Known label values start at 0, so a rate over them exists before the first event (and in
# multiprocess mode, where a series appears only once a process records it).
for _outcome in ("done", "skipped", "failed"):
    SYNC_RUNS.labels(outcome=_outcome)
SYNC_ROW_KINDS = ("created", "updated", "unchanged")  # a SyncRun's counts
for _kind in SYNC_ROW_KINDS:
    SYNC_ROWS.labels(kind=_kind)
for _reason in ("slow_client", "server_behind"):
    STREAM_LAGGING.labels(reason=_reason)
