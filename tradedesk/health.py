"""/healthz: the database, the channel layer, the market-data broker and the market-data feed,
each ok or down.

Neither market-data check spends the provider's paced request budget on every hit: the REST
broker is probed at most once per BROKER_PROBE_S (the answer is cached for every process), and
the feed's state is the market-data hub's own last status (market.hub.feed_status).
"""

from __future__ import annotations

import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from market.hub import feed_status
from tradedesk.broker import market_data_broker

BROKER_PROBE_S = 30
BROKER_PROBE_KEY = "health:broker-probe"


class Down(Exception):
    """A check's own account of what is down (shown as is, without an exception type)."""


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _channel_layer() -> None:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    probe = {"type": "health.probe", "id": uuid.uuid4().hex}
    async_to_sync(layer.send)(channel, probe)
    if async_to_sync(layer.receive)(channel) != probe:
        raise RuntimeError("channel layer returned a different message")


def _broker() -> None:
    failure = cache.get(BROKER_PROBE_KEY)
    if failure is None:
        try:
            market_data_broker().get_clock()
            failure = ""
        except Exception as error:
            failure = f"{type(error).__name__}: {error}"
        cache.set(BROKER_PROBE_KEY, failure, BROKER_PROBE_S)
    if failure:
        raise Down(failure)


def _market_data_feed() -> None:
    status = feed_status()
    if status is None:
        if settings.REDIS_URL:  # production: `manage.py runstream` holds the hub
            raise Down("no market-data hub is running (manage.py runstream)")
        return  # the embedded run starts its hub with the first stream connection
    if status["state"] == "down":
        raise Down(f"feed down since {status['at']}: {status['detail']}")


CHECKS = {
    "database": _database,
    "channel_layer": _channel_layer,
    "broker": _broker,
    "market_data": _market_data_feed,
}


@never_cache
@require_GET
def healthz(request):
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Down as error:
            results[name] = f"down: {error}"[:300]
        except Exception as error:
            results[name] = f"down: {type(error).__name__}: {error}"[:300]
    down = [name for name, state in results.items() if state != "ok"]
    return JsonResponse(
        {"status": "ok" if not down else "down", "down": down, "checks": results},
        status=200 if not down else 503,
    )
