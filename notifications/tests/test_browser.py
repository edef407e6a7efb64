"""The live toast in headless Chromium: the desk served by a real daphne on loopback (the
stream needs ASGI; pytest's live_server is WSGI), an order filled while the page is open."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import requests
from playwright.sync_api import expect

from conftest import PASSWORD, browser_page, log_in
from market.tests.stream.processes import (
    MANAGE,
    PYTHON,
    ROOT,
    daphne,
    free_port,
    stop,
    wait_for_port,
)

from .receiver import Receiver

pytestmark = pytest.mark.browser

SETUP = f"""
from django.core.management import call_command
from rest_framework_simplejwt.tokens import AccessToken
from accounts.services import register_user
call_command("migrate", verbosity=0)
print(AccessToken.for_user(register_user(username="alice", password={PASSWORD!r})))
"""


@pytest.fixture
def desk(tmp_path):
    """The desk in daphne (in-memory channel layer, Celery in-line) and its trader's JWT."""
    env = os.environ | {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'desk.sqlite3'}",
        "REDIS_URL": "",
        "TRADEDESK_SIM_ALWAYS_OPEN": "1",
        "CELERY_TASK_ALWAYS_EAGER": "1",
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "1",
        "WEBHOOK_MAX_ATTEMPTS": "2",
        # WhiteNoise serves the source static files (no collectstatic in a test).
        "DEBUG": "1",
    }
    setup = subprocess.run(
        [PYTHON, MANAGE, "shell", "-c", SETUP], env=env, cwd=ROOT, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert setup.returncode == 0, setup.stderr[-3000:]
    port = free_port()
    log = open(tmp_path / "daphne.log", "w")  # noqa: SIM115 - closed after the server
    server = daphne(env, port, stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(port)
    yield f"http://127.0.0.1:{port}", setup.stdout.split()[-1]
    stop([server])
    log.close()


@pytest.fixture
def desk_page(chromium, desk):
    with browser_page(chromium, desk[0]) as page:
        yield page


def test_a_fill_while_the_page_is_open_shows_a_toast_and_the_log(desk, desk_page):
    url, token = desk
    page = desk_page
    log_in(page, "alice")
    with Receiver(answers=(500, 200)) as receiver:
        page.goto("/accounts/notifications/")
        page.get_by_label("Endpoint URL").fill(receiver.url)
        page.get_by_role("button", name="Add endpoint").click()
        receiver.secret = page.locator("#new-webhook-secret").inner_text()
        page.wait_for_function("document.getElementById('live-state').textContent === '● Live'")
        assert page.locator("#unread-count").is_hidden()

        placed = requests.post(
            f"{url}/api/v1/orders/",
            json={"symbol": "AAPL", "qty": "3", "side": "buy", "type": "market"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert placed.status_code == 201, placed.text
        order = placed.json()["order"]
        assert order["status"] == "filled"

        toast = page.locator(".toast.fill")
        toast.wait_for()
        assert re.fullmatch(r"Filled: buy 3 AAPL @ [\d.]+", toast.locator("a").inner_text())
        assert toast.locator("a").get_attribute("href") == f"/orders/{order['id']}/"
        assert page.locator("#unread-count").inner_text().startswith("1")
        page.screenshot(path="/tmp/hnot-toast.png")
    assert receiver.refused == [] and len(receiver.received) == 2

    page.reload()
    assert page.locator("tr.notification.unread").count() == 1
    log = page.locator("table.deliveries tbody tr")
    assert log.count() == 2
    assert "HTTP 200" in log.nth(0).inner_text() and "delivered" in log.nth(0).inner_text()
    assert "HTTP 500" in log.nth(1).inner_text()
    page.screenshot(path="/tmp/hnot-notifications.png", full_page=True)


@pytest.mark.django_db(transaction=True)
def test_without_the_stream_a_new_notification_still_toasts(page, trader):
    """pytest's live_server has no stream: the page polls, notifications included."""
    from notifications.models import Notification

    Notification.objects.create(user=trader, kind="fill", title="Filled before the page opened")
    log_in(page, "alice")
    # The first poll marks what is there already.
    with page.expect_response(lambda response: "/api/v1/notifications/" in response.url):
        page.goto("/accounts/notifications/")
    # The page writes its state once it has handled that answer: wait for it, not just it.
    expect(page.locator("#live-state")).to_have_text("● Updating every few seconds")
    Notification.objects.create(user=trader, kind="rejected", title="Rejected: buy 1 MSFT")

    toast = page.locator(".toast.rejected")
    toast.wait_for()
    assert toast.locator("a").inner_text() == "Rejected: buy 1 MSFT"
    assert page.locator(".toast").count() == 1  # the older one is not news
    assert page.locator("#unread-count").inner_text().startswith("2")
