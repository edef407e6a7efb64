"""The channel layer every stream consumer listens on must survive an idle connection.

Each Channels consumer waits on the channel layer (RedisChannelLayer: BZPOPMIN with a 5 s
timeout). redis-py 8 reads with a 5 s socket timeout by default, so an idle wait could end in
a redis TimeoutError instead of an empty result — which kills the consumer and drops the
client's socket (the benchmark's "lost trades").
"""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import channel_layers

from conftest import require_service


@pytest.mark.services
async def test_an_idle_receive_outlasts_the_layers_blocking_pop(settings):
    require_service("redis", bool(settings.REDIS_URL))
    # A layer of its own: the process-wide one holds connections bound to earlier tests' loops.
    layer = channel_layers.make_backend("default")
    channel = await layer.new_channel()
    # One full BZPOPMIN cycle with nothing to receive: our own timeout ends the wait, not Redis.
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(channel), layer.brpop_timeout + 1)
    await layer.flush()
