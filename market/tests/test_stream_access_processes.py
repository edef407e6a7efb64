"""The production layout (two daphnes over Redis): the per-user connection cap counts across
processes, and a revocation made in a third process closes the user's streams in both."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time

import pytest
import websockets

from conftest import require_service

from .processes import MANAGE, PYTHON, ROOT, daphne, free_port, stop, trader_token, wait_for_port

REVOKE = """
from accounts.models import User
from accounts.services import revoke_sessions
revoke_sessions(User.objects.get(username="streamer"))
print("revoked")
"""


async def error_then_close(client) -> tuple[str, int]:
    """The `error` code a refused connection was told, and its close code."""
    codes = []
    try:
        while True:
            codes += [m["code"] for m in json.loads(await client.recv()) if m["type"] == "error"]
    except websockets.ConnectionClosed:
        return (codes[-1] if codes else ""), client.close_code


@pytest.mark.services
def test_the_cap_counts_across_processes_and_a_revocation_closes_streams_everywhere(
    tmp_path, settings
):
    require_service("Redis", bool(settings.REDIS_URL))
    env = os.environ | {
        "REDIS_URL": settings.REDIS_URL,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'stream.sqlite3'}",
        "MARKET_DATA_PROVIDER": "sim",
        "STREAM_MAX_CONNECTIONS_PER_USER": "2",
    }
    token = trader_token(env)
    ports = [free_port(), free_port()]
    webs = [daphne(env, port, stderr=subprocess.DEVNULL) for port in ports]
    try:
        for port in ports:
            wait_for_port(port, timeout_s=60)  # two Django processes starting on a busy machine
        urls = [f"ws://127.0.0.1:{port}/api/v1/broker/stream?token={token}" for port in ports]

        async def scenario() -> float:
            async with asyncio.timeout(30):
                first = await websockets.connect(urls[0])
                second = await websockets.connect(urls[1])
                for client in (first, second):
                    assert json.loads(await client.recv())[0]["type"] == "subscription"
                # A third, on either process, is over the cap the two processes share.
                third = await websockets.connect(urls[0])
                assert await error_then_close(third) == ("too_many_connections", 1008)

                revoking = await asyncio.create_subprocess_exec(
                    PYTHON, MANAGE, "shell", "-c", REVOKE, cwd=ROOT, env=env,
                    stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
                assert (await revoking.communicate())[0].decode().split()[-1] == "revoked"
                revoked_at = time.monotonic()
                closes = await asyncio.gather(*(error_then_close(c) for c in (first, second)))
                assert closes == [("access_revoked", 1008)] * 2
                return time.monotonic() - revoked_at

        assert asyncio.run(scenario()) < 1
    finally:
        stop(webs)
