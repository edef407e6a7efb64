"""The embedded run's supervisor: it starts web, stream, worker and beat, and stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tradedesk import run

# The real commands replaced by children that report their pid (one atomic write each) and
# then run `web` (the web child) or sleep (stream, worker and beat).
SUPERVISE = """
import sys
import tradedesk.run as run
def child(body):
    report = "sys.stdout.write(str(os.getpid()) + chr(10)); sys.stdout.flush(); "
    return [sys.executable, "-c", "import os, sys, time; " + report + body]
sleeper = child("time.sleep(120)")
run.commands = lambda host, port: {{
    "web": child({web!r}), "worker": sleeper, "beat": sleeper, "stream": sleeper
}}
sys.exit(run.main())
"""


def start_supervisor(
    tmp_path: Path, web: str = "time.sleep(120)"
) -> tuple[subprocess.Popen, list[int]]:
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "tradedesk.settings",
        "TRADEDESK_DATA_DIR": str(tmp_path),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", SUPERVISE.format(web=web)],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    pids, lines = [], []
    children = len(run.commands("127.0.0.1", 0))
    while len(pids) < children:
        line = process.stdout.readline()
        assert line, f"supervisor ended early: {lines}"
        lines.append(line)
        if line.strip().isdigit():
            pids.append(int(line))
    return process, pids


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_embedded_run_starts_daphne_a_worker_and_beat():
    commands = run.commands("127.0.0.1", 8123)
    assert commands["web"][1:] == [
        "-m",
        "daphne",
        "-b",
        "127.0.0.1",
        "-p",
        "8123",
        "tradedesk.asgi:application",
    ]
    assert commands["worker"][1:6] == ["-m", "celery", "-A", "tradedesk", "worker"]
    assert commands["beat"][1:6] == ["-m", "celery", "-A", "tradedesk", "beat"]
    assert commands["stream"][1:] == ["manage.py", "runstream"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_stops_every_child(tmp_path, signum):
    process, pids = start_supervisor(tmp_path)
    try:
        assert all(is_running(pid) for pid in pids)
        process.send_signal(signum)
        assert process.wait(timeout=30) == 0
        assert not any(is_running(pid) for pid in pids)
    finally:
        process.kill()
        process.stdout.close()


def test_when_one_child_dies_the_rest_are_stopped_and_the_run_fails(tmp_path):
    process, pids = start_supervisor(tmp_path, web="time.sleep(1); os._exit(3)")
    try:
        assert process.wait(timeout=30) == 3
        assert not any(is_running(pid) for pid in pids)
    finally:
        process.kill()
        process.stdout.close()
