"""Running the project's own processes (daphne, runstream) in tests, on a database of their own."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parents[2]
PYTHON, MANAGE = sys.executable, str(ROOT / "manage.py")
# The processes cannot see the test database: they migrate their own, with one trader whose
# access token the command prints.
SETUP = """
from django.core.management import call_command
from rest_framework_simplejwt.tokens import AccessToken
from accounts.services import register_user
call_command("migrate", verbosity=0)
print(AccessToken.for_user(register_user(username="streamer", password="s3cret-Passw0rd!")))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _shell_output(env: dict[str, str], script: str) -> str:
    """The last word `manage.py shell -c script` prints, run as the processes would."""
    return subprocess.run(
        [PYTHON, MANAGE, "shell", "-c", script], env=env, cwd=ROOT, capture_output=True,
        text=True, check=True,
    ).stdout.split()[-1]  # fmt: skip


def trader_token(env: dict[str, str]) -> str:
    """Migrates the processes' database and returns its trader's access token."""
    return _shell_output(env, SETUP)


def short_lived_token(env: dict[str, str], seconds: int) -> str:
    """An access token of the processes' trader that expires `seconds` from now."""
    script = (
        "from datetime import timedelta\n"
        "from rest_framework_simplejwt.tokens import AccessToken\n"
        "from accounts.models import User\n"
        "token = AccessToken.for_user(User.objects.get(username='streamer'))\n"
        f"token.set_exp(lifetime=timedelta(seconds={seconds}))\n"
        "print(token)\n"
    )
    return _shell_output(env, script)


def daphne(env: dict[str, str], port: int, **popen) -> subprocess.Popen:
    command = [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    return subprocess.Popen([*command, "tradedesk.asgi:application"], env=env, cwd=ROOT, **popen)


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


async def connect_when_listening(url: str) -> websockets.ClientConnection:
    for _ in range(100):  # daphne takes a moment to listen
        try:
            return await websockets.connect(url)
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError("daphne never listened")


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s * 10)):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listened on port {port}")
