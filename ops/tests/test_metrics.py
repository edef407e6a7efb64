"""/metrics: every family in Prometheus's text format, values that move with the desk's work,
and who may read it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from celery import Celery
from django.core.cache import cache

from accounts.selectors import default_broker_account
from conftest import require_service
from market.stream.hub import FEED_STATUS_KEY
from ops import selectors
from ops.tests.conftest import families, moved, sample
from orders import halts, services
from orders.models import SyncRun
from orders.sync import runs
from orders.validation import OrderInput
from tradedesk.broker.errors import BrokerUnavailable

pytestmark = pytest.mark.django_db

FAMILIES = {
    "tradedesk_order_placement_seconds": "histogram",
    "tradedesk_gate_refusals": "counter",
    "tradedesk_sync_runs": "counter",
    "tradedesk_sync_rows": "counter",
    "tradedesk_sync_duration_seconds": "histogram",
    "tradedesk_stream_connections": "gauge",
    "tradedesk_stream_lagging": "counter",
    "tradedesk_stream_slow_closes": "counter",
    "tradedesk_approvals_waiting": "gauge",
    "tradedesk_approvals_oldest_wait_seconds": "gauge",
    "tradedesk_celery_queue_depth": "gauge",
    "tradedesk_stream_upstream_state": "gauge",
    "tradedesk_stream_upstream_reconnects": "counter",
    "tradedesk_scrape_failed": "gauge",
}


def market_buy(qty: str) -> OrderInput:
    return OrderInput(
        symbol="AAPL", side="buy", type="market", time_in_force="day", qty=Decimal(qty)
    )


def place(user, qty: str = "1"):
    return services.place_order(
        user=user, broker_account=default_broker_account(user), order_input=market_buy(qty)
    )


PLACED = "tradedesk_order_placement_seconds_count"


def test_every_family_is_there_in_the_text_format(scrape):
    found = scrape()
    assert {name: found[name].type for name in FAMILIES} == FAMILIES
    assert sample(found, "tradedesk_scrape_failed", source="approvals") == 0
    assert sample(found, "tradedesk_scrape_failed", source="celery") == 0


def test_a_placement_a_refusal_and_a_sync_move_their_metrics(scrape, trader, make_user, settings):
    before = scrape()
    place(trader)  # fills at once on the paper exchange

    operator = make_user("olga", is_staff=True)
    halt = halts.set_halt(
        scope="desk", target=None, mode="halted", reason="close", operator=operator
    ).halt
    with pytest.raises(services.OrderInvalid):
        place(trader)
    halts.lift_halt(halt, operator=operator, reason="open again")

    settings.ORDER_COMMAND_RATES = {**settings.ORDER_COMMAND_RATES, "place": "1/hour"}
    place(trader)
    with pytest.raises(Exception, match="Too many requests"):
        place(trader)

    run = runs.execute_sync_run(
        SyncRun.objects.create(user=trader, broker_account=default_broker_account(trader))
    )
    after = scrape()

    assert moved(before, after, PLACED, broker="sim", outcome="filled") == 2
    assert moved(before, after, PLACED, broker="sim", outcome="refused") == 2
    took = "tradedesk_order_placement_seconds_sum"
    assert moved(before, after, took, broker="sim", outcome="filled") > 0

    refusals = "tradedesk_gate_refusals_total"
    assert moved(before, after, refusals, command="place", code="trading_halted") == 1
    assert moved(before, after, refusals, command="place", code="rate_limited") == 1

    assert moved(before, after, "tradedesk_sync_runs_total", outcome="done") == 1
    rows = {
        kind: moved(before, after, "tradedesk_sync_rows_total", kind=kind)
        for kind in ("created", "updated", "unchanged")
    }
    assert rows == {"created": run.created, "updated": run.updated, "unchanged": run.unchanged}
    assert sum(rows.values()) >= 1  # the sync went through the desk's orders
    assert moved(before, after, "tradedesk_sync_duration_seconds_count", outcome="done") == 1


def test_a_failed_sync_is_counted_as_failed(scrape, trader, monkeypatch):
    def down(*args, **kwargs):
        raise BrokerUnavailable("the broker is down")

    monkeypatch.setattr(runs, "sync_orders", down)
    before = scrape()
    with pytest.raises(BrokerUnavailable):
        runs.execute_sync_run(SyncRun.objects.create(user=trader))
    assert moved(before, scrape(), "tradedesk_sync_runs_total", outcome="failed") == 1


def test_approvals_waiting_are_counted_at_scrape(scrape, trader, settings):
    settings.APPROVAL_NOTIONAL = Decimal("1000")
    assert sample(scrape(), "tradedesk_approvals_waiting") == 0
    before = scrape()
    waiting = [place(trader, qty="100").order for _ in range(2)]
    assert {order.status for order in waiting} == {"pending_approval"}
    found = scrape()
    assert sample(found, "tradedesk_approvals_waiting") == 2
    assert sample(found, "tradedesk_approvals_oldest_wait_seconds") >= 0
    assert moved(before, found, PLACED, broker="sim", outcome="pending_approval") == 2


def test_the_hubs_record_gives_the_upstream_state_and_its_reconnects(scrape):
    found = scrape()
    assert sample(found, "tradedesk_stream_upstream_state", state="absent") == 1
    assert sample(found, "tradedesk_stream_upstream_state", state="up") == 0

    at = datetime.now(UTC).isoformat()
    cache.set(FEED_STATUS_KEY, {"state": "down", "detail": "reset", "at": at, "reconnects": 3})
    found = scrape()
    assert sample(found, "tradedesk_stream_upstream_state", state="down") == 1
    assert sample(found, "tradedesk_stream_upstream_state", state="absent") == 0
    assert sample(found, "tradedesk_stream_upstream_reconnects_total") == 3


def test_a_source_that_fails_is_reported_and_the_rest_still_answers(scrape, monkeypatch):
    def unreachable():
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(selectors, "celery_queue_depths", unreachable)
    found = scrape()
    assert sample(found, "tradedesk_scrape_failed", source="celery") == 1
    assert "tradedesk_celery_queue_depth" not in found
    assert "tradedesk_approvals_waiting" in found


def _queue_app(broker_url: str, **options) -> Celery:
    app = Celery("queue-depth-test", set_as_current=False)
    app.conf.broker_url = broker_url
    app.conf.broker_transport_options = options
    return app


def test_queue_depth_counts_the_filesystem_brokers_message_files(tmp_path, monkeypatch):
    folder = tmp_path / "queue"
    folder.mkdir()
    app = _queue_app(
        "filesystem://",
        data_folder_in=str(folder),
        data_folder_out=str(folder),
        control_folder=str(tmp_path),
    )
    monkeypatch.setattr(selectors, "current_app", app)
    assert selectors.celery_queue_depths() == {"celery": 0}
    for _ in range(3):
        app.send_task("orders.tasks.run_sync", ("x",))
    assert selectors.celery_queue_depths() == {"celery": 3}


@pytest.mark.services
def test_queue_depth_is_the_redis_queues_length(monkeypatch, settings):
    require_service("Redis (REDIS_URL)", bool(settings.REDIS_URL))
    app = _queue_app(settings.REDIS_URL)
    app.conf.task_default_queue = "tradedesk-metrics-test"
    monkeypatch.setattr(selectors, "current_app", app)
    with app.connection_for_write() as connection:
        connection.default_channel.client.delete("tradedesk-metrics-test")
        try:
            assert selectors.celery_queue_depths() == {"tradedesk-metrics-test": 0}
            for _ in range(2):
                app.send_task("orders.tasks.run_sync", ("x",))
            assert selectors.celery_queue_depths() == {"tradedesk-metrics-test": 2}
        finally:
            connection.default_channel.client.delete("tradedesk-metrics-test")


# --- who may read it -------------------------------------------------------------


def test_unset_token_serves_loopback_and_refuses_anyone_else(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    # A forged header from a stranger changes nothing (no trusted proxy vouches for it).
    forged = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="127.0.0.1")
    assert forged.status_code == 403


def test_behind_a_trusted_proxy_the_forwarded_client_counts(client, settings):
    settings.METRICS_TOKEN = ""
    settings.TRUSTED_PROXIES = ["127.0.0.1/32"]
    outside = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert outside.status_code == 403


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("", 401),
        ("Bearer", 401),
        ("Basic c2NyYXBlcjpzM2NyZXQ=", 401),
        ("Bearer wrong-token", 403),
        ("Bearer scrape-token-but-longer", 403),
        ("Bearer \u00e9\u00e8", 403),  # not ASCII: still a clean refusal
        ("Bearer scrape-token", 200),
        ("bearer scrape-token", 200),
    ],
)
def test_with_a_token_only_its_bearer_reads(client, settings, authorization, status):
    settings.METRICS_TOKEN = "scrape-token"
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    # From a non-loopback address: with a token set, the address doesn't matter.
    response = client.get("/metrics", REMOTE_ADDR="198.51.100.7", **headers)
    assert response.status_code == status
    if status == 401:
        assert response["WWW-Authenticate"].startswith("Bearer")
    if status != 200:
        assert b"tradedesk_" not in response.content


def test_with_a_token_loopback_needs_it_too(client, settings):
    settings.METRICS_TOKEN = "scrape-token"
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 401


def test_only_get_is_answered(client):
    assert client.post("/metrics").status_code == 405


def test_the_text_parses_with_the_client_librarys_parser(client):
    # A Prometheus server asking for the text format by name gets it.
    response = client.get("/metrics", HTTP_ACCEPT="text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
    assert response.status_code == 200
    assert "tradedesk_gate_refusals" in families(response.content.decode())
