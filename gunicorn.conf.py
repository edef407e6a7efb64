"""gunicorn's settings for the HTTP workers (README "Production"): `gunicorn -c gunicorn.conf.py
tradedesk.wsgi`.

With PROMETHEUS_MULTIPROC_DIR set, each worker writes its metrics to files there and /metrics
sums them; a worker that exits takes its live gauges (open stream connections) with it.
"""

import os

from prometheus_client import multiprocess


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
