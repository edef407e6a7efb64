"""The apps form floors and every import runs down them (or stays inside one app).

    tradedesk (the broker package, the shared modules)   imports no app
    accounts                                              imports no other app
    orders                                                accounts
    market, portfolio, gateway, notifications             accounts, orders (not each other)
    ops                                                   accounts, orders, market

The project's wiring (urls, asgi, the health check, the embedded runner) stands above them all.
Each offence is reported as file:line. A new app needs its floor here.
"""

from __future__ import annotations

import configparser

import pytest

from .source_scan import ROOT, imported_modules, module_of, source_files

FLOORS = {
    "tradedesk": 0,
    "accounts": 1,
    "orders": 2,
    "market": 3,
    "portfolio": 3,
    "gateway": 3,
    "notifications": 3,
    "ops": 4,
}
# tradedesk's modules that put the apps together: they may import any of them.
WIRING = {"tradedesk.urls", "tradedesk.asgi", "tradedesk.health", "tradedesk.run"}


def _app_of(module: str) -> str | None:
    top = module.split(".")[0]
    return top if top in FLOORS else None


def layering_offences(source: str, module: str) -> list[tuple[int, str]]:
    """(line, imported module) of every import by `module` of an app not below its own."""
    own = _app_of(module)
    if own is None or module in WIRING:
        return []
    found = []
    for line, names in imported_modules(source, module):
        other = _app_of(names[0])
        if other is not None and other != own and FLOORS[other] >= FLOORS[own]:
            found.append((line, names[0]))
    return found


def apps() -> list[str]:
    return sorted(p.parent.name for p in ROOT.glob("*/apps.py"))


def test_every_app_has_a_floor():
    assert "orders" in apps()  # the scan sees the apps (a wrong ROOT would pass vacuously)
    assert set(apps()) <= set(FLOORS), "give the new app its floor in FLOORS"


def test_every_apps_tests_are_collected():
    """`make test` runs pytest over pytest.ini's testpaths: an app left out of them would have
    its tests never run, in CI too."""
    config = configparser.ConfigParser()
    config.read(ROOT / "pytest.ini")
    testpaths = set(config["pytest"]["testpaths"].split())
    with_tests = {app for app in apps() if (ROOT / app / "tests").is_dir()}
    assert "orders" in with_tests
    assert with_tests <= testpaths, f"add to pytest.ini testpaths: {sorted(with_tests - testpaths)}"


def test_every_import_runs_down_the_floors():
    files = source_files(*apps(), "tradedesk")
    assert len(files) > 60
    found = [
        f"{path.relative_to(ROOT)}:{line}: imports {name}"
        for path in files
        for line, name in layering_offences(path.read_text(), module_of(path))
    ]
    assert not found, "imports that break the floors:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("module", "code", "imported"),
    [
        ("accounts.admin", "from orders.admin import sync_now", "orders.admin"),
        ("orders.validation", "from market.services import SYMBOL_RE", "market.services"),
        ("tradedesk.broker.sim.exchange", "from orders.models import Order", "orders.models"),
        ("tradedesk.ratelimit", "import accounts.models", "accounts.models"),
        ("market.views", "from portfolio import services", "portfolio"),
        ("orders.sync.runs", "from ...market import hub", "market"),
    ],
)
def test_an_import_up_or_across_is_caught(module, code, imported):
    assert layering_offences(f"import os\n{code}\n", module) == [(2, imported)]


@pytest.mark.parametrize(
    ("module", "code"),
    [
        ("orders.services", "from accounts.models import BrokerAccount"),
        ("market.stream.consumers", "from orders import events"),
        ("orders.sync.runs", "from ..models import SyncRun"),
        ("accounts.services", "from tradedesk.broker import get_broker"),
        ("tradedesk.asgi", "from market.stream.routing import websocket_urlpatterns"),
    ],
)
def test_an_import_down_or_within_is_fine(module, code):
    assert layering_offences(code, module) == []
