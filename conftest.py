"""Fixtures shared by every app's tests."""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

pytest_plugins = ["tradedesk.broker.tests.alpaca_plugin"]

REQUIRE_SERVICES = os.environ.get("TRADEDESK_REQUIRE_SERVICES") == "1"
PASSWORD = "s3cret-Passw0rd!"


def require_service(name: str, available: bool) -> None:
    """Skip a test that needs a real server, unless CI requires it: then it fails."""
    if available:
        return
    message = f"{name} is not configured"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}, and TRADEDESK_REQUIRE_SERVICES=1")
    pytest.skip(message)


def pytest_runtest_logreport(report):
    # Belt and braces: under TRADEDESK_REQUIRE_SERVICES a skipped services test fails the run.
    if REQUIRE_SERVICES and report.skipped and "services" in report.keywords:
        report.outcome = "failed"


_test_days = itertools.count(1)


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings, monkeypatch):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Rate-limit windows (1 s up to a day) start as the test starts, on a day of its own: a
    # test that counts requests against a per-minute rate never straddles a window's edge,
    # where a fixed window lets up to twice the rate through (CI saw 20 of a 10/min limit).
    from tradedesk import ratelimit

    started = time.time()
    shift = (int(started // 86400) + next(_test_days)) * 86400 - started
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: time.time() + shift))
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def make_user(db):
    from accounts.services import register_user

    counter = iter(range(1, 10_000))

    def make(username: str | None = None, password: str = PASSWORD, **extra):
        user = register_user(username=username or f"trader{next(counter)}", password=password)
        for key, value in extra.items():
            setattr(user, key, value)
        if extra:
            user.save()
        return user

    return make


@pytest.fixture
def trader(make_user):
    return make_user("alice")


@pytest.fixture
def other_trader(make_user):
    return make_user("mallory")


def place_resting_buy(user, *, symbol: str = "AAPL", limit: str = "1", account=None):
    """An open limit buy (1 share, gtc) placed through the desk's service; far below the
    market it rests. On `account`, else the user's default one."""
    from decimal import Decimal

    from accounts.selectors import default_broker_account
    from orders import services
    from orders.validation import OrderInput

    order = services.place_order(
        user=user,
        broker_account=account or default_broker_account(user),
        order_input=OrderInput(
            symbol=symbol,
            side="buy",
            type="limit",
            time_in_force="gtc",
            qty=Decimal("1"),
            limit_price=Decimal(limit),
        ),
    ).order
    assert order.is_open, order.status
    return order


def totp_code(device) -> str:
    """The code an authenticator app would show, for the earliest time step the device still
    accepts (each step's code verifies once; its tolerance allows one step either side)."""
    from django_otp.oath import TOTP

    device.refresh_from_db()
    now_step = int((time.time() - device.t0) // device.step) + device.drift
    step = max(now_step - device.tolerance, device.last_t + 1)
    assert step <= now_step + device.tolerance, "this device has used up its codes for now"
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits)
    totp.time = device.t0 + step * device.step + device.step / 2
    return f"{totp.token():0{device.digits}d}"


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def api(trader) -> APIClient:
    return client_for(trader)


@pytest.fixture
def other_api(other_trader) -> APIClient:
    return client_for(other_trader)


# --- browser tests (headless Chromium through Playwright) ------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def chromium():
    """Headless Chromium for a module's browser tests.

    Playwright's sync API runs an event loop in this thread; Django's ORM refuses to run in
    a thread with a running loop unless told it's fine (it is: the loop is Playwright's).
    Set only while the module's browser runs, so no other test (or subprocess) inherits it."""
    require_service("chromium (apt-get install chromium)", os.access(CHROMIUM, os.X_OK))
    from playwright.sync_api import sync_playwright

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@contextlib.contextmanager
def browser_page(chromium, base_url: str):
    """A page in a fresh browser context at base_url; no JavaScript error may happen on it."""
    context = chromium.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"


@pytest.fixture
def page(chromium, live_server):
    with browser_page(chromium, live_server.url) as page:
        yield page


@pytest.fixture
def eager(settings):
    """Celery runs tasks in-line, their errors raised."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CELERY_TASK_EAGER_PROPAGATES = True
    from tradedesk.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = False
    app.conf.task_eager_propagates = False


def shot(page, name: str) -> None:
    """A full-page screenshot in test-artifacts/screenshots/ (kept out of git), to look at."""
    from django.conf import settings

    folder = Path(settings.BASE_DIR) / "test-artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def log_in(page, username: str) -> None:
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/")


class SlowChannelLayer:
    """A channel layer slower than the request: each group_send waits for `release`, then
    lands in `sent` as (group, message). Patch a module's get_channel_layer with
    `lambda: layer`."""

    def __init__(self) -> None:
        import threading

        self.release = threading.Event()
        self.sent: list[tuple[str, dict]] = []

    async def group_send(self, group: str, message: dict) -> None:
        self.release.wait(5)
        self.sent.append((group, message))
