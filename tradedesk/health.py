"""/healthz: the database, the channel layer and the market-data broker, each ok or down."""

from __future__ import annotations

import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from market.services import market_data_broker


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
    market_data_broker().get_clock()


CHECKS = {"database": _database, "channel_layer": _channel_layer, "broker": _broker}


@never_cache
@require_GET
def healthz(request):
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as error:
            results[name] = f"down: {type(error).__name__}: {error}"[:300]
    down = [name for name, state in results.items() if state != "ok"]
    return JsonResponse(
        {"status": "ok" if not down else "down", "down": down, "checks": results},
        status=200 if not down else 503,
    )
