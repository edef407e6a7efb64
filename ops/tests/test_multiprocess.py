"""Under gunicorn (and the embedded run) many processes count: /metrics sums them, and a dead
worker's open connections stop counting when gunicorn's child_exit hook marks it dead."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from types import SimpleNamespace

import pytest
from django.conf import settings

from ops.tests.conftest import sample
from tradedesk import run

# One process's work: two open connections (+1 for each process after the first), a refusal,
# a placement. It prints its pid.
WORK = """
import os
from tradedesk import metrics
metrics.STREAM_CONNECTIONS.inc({connections})
metrics.GATE_REFUSALS.labels(command="place", code="trading_halted").inc()
metrics.ORDER_PLACEMENT_SECONDS.labels(broker="sim", outcome="filled").observe(0.02)
print(os.getpid())
"""


def work_in_a_process(directory, connections: int) -> int:
    done = subprocess.run(
        [sys.executable, "-c", WORK.format(connections=connections)],
        env=os.environ | {"PROMETHEUS_MULTIPROC_DIR": str(directory)},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


@pytest.mark.django_db
def test_two_processes_counts_are_summed_and_a_dead_workers_gauge_drops(
    tmp_path, monkeypatch, scrape
):
    first = work_in_a_process(tmp_path, connections=2)
    work_in_a_process(tmp_path, connections=3)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    found = scrape()
    assert sample(found, "tradedesk_stream_connections") == 5
    refusals = "tradedesk_gate_refusals_total"
    labels = {"command": "place", "code": "trading_halted"}
    assert sample(found, refusals, **labels) == 2
    placed = "tradedesk_order_placement_seconds_count"
    assert sample(found, placed, broker="sim", outcome="filled") == 2
    # What is read at scrape is still there, once.
    assert "tradedesk_approvals_waiting" in found

    hooks = runpy.run_path(str(settings.BASE_DIR / "gunicorn.conf.py"))
    hooks["child_exit"](None, SimpleNamespace(pid=first))

    found = scrape()
    assert sample(found, "tradedesk_stream_connections") == 3  # the live worker's only
    assert sample(found, refusals, **labels) == 2  # counts stay


def test_the_embedded_run_starts_with_an_empty_metrics_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prometheus"))
    (tmp_path / "prometheus").mkdir()
    (tmp_path / "prometheus" / "counter_123.db").write_bytes(b"old")
    kept = tmp_path / "prometheus" / "README"
    kept.write_text("not ours")
    assert run.fresh_metrics_dir() == tmp_path / "prometheus"
    assert list((tmp_path / "prometheus").iterdir()) == [kept]


def test_without_a_directory_set_the_embedded_run_uses_var(tmp_path, monkeypatch, settings):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    settings.DATA_DIR = tmp_path
    assert run.fresh_metrics_dir() == tmp_path / "prometheus"
    assert (tmp_path / "prometheus").is_dir()
