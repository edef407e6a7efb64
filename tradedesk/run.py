"""The embedded run: daphne (pages, admin, API, the stream and its market-data hub), the
stream process following live order updates, a Celery worker and Celery beat, all writing
their metrics to one directory (var/prometheus) that /metrics sums.

`make run` execs this after migrating; Ctrl-C (or SIGTERM) stops all of them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings


def commands(host: str, port: int) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "web": [python, "-m", "daphne", "-b", host, "-p", str(port), "tradedesk.asgi:application"],
        "worker": [
            python,
            "-m",
            "celery",
            "-A",
            "tradedesk",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            "2",
        ],
        "beat": [python, "-m", "celery", "-A", "tradedesk", "beat", "--loglevel", "INFO"],
        "stream": [python, "manage.py", "runstream"],
    }


def fresh_metrics_dir() -> Path:
    """The directory every child writes its metrics to (prometheus_client's multiprocess
    mode: /metrics in the web process sums the worker's sync runs with its own), emptied of
    the previous run's files: those processes are gone, and their counts with them."""
    path = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or settings.DATA_DIR / "prometheus")
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    return path


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradedesk.settings")
    import django

    django.setup()
    # Inherited by every child, which reads it when it first imports prometheus_client.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(fresh_metrics_dir())
    host, port = settings.HOST, settings.PORT
    # Handlers first: a stop signal during start-up still stops every child that started.
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    # Children get their own process group: Ctrl-C reaches only this process, which stops
    # each child exactly once (a second signal made celery beat die mid-shutdown).
    processes = {
        name: subprocess.Popen(argv, process_group=0) for name, argv in commands(host, port).items()
    }
    print(f"TradeDesk is serving on http://{host}:{port}/  (Ctrl-C stops everything)", flush=True)

    exit_code = 0
    while not stopping:
        for name, process in processes.items():
            if process.poll() is not None:
                print(f"{name} exited with {process.returncode}; stopping the rest", flush=True)
                exit_code = process.returncode or 1
                stopping = True
        time.sleep(0.5)
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for process in processes.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
