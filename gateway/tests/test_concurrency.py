"""Bots retry: many identical POSTs at once with one client_order_id place one order."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from conftest import require_service
from gateway.tests.conftest import AlpacaClient
from orders.models import Order

pytestmark = pytest.mark.django_db(transaction=True)
THREADS = 12


@pytest.mark.services
def test_simultaneous_posts_with_one_client_order_id_place_one_order(issued):
    require_service("PostgreSQL", connection.vendor == "postgresql")
    body = {
        "symbol": "AAPL", "qty": 1, "side": "buy", "type": "limit", "time_in_force": "gtc",
        "limit_price": 1, "client_order_id": "retried",
    }  # fmt: skip
    barrier = threading.Barrier(THREADS)
    statuses: list[int] = []

    def post() -> None:
        bot = AlpacaClient(issued.api_key.key_id, issued.secret)
        try:
            barrier.wait(timeout=20)
            statuses.append(bot.post("/v2/orders", body).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [200] + [422] * (THREADS - 1)
    assert Order.objects.filter(client_order_id="retried").count() == 1
