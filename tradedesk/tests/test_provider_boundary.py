"""The provider is chosen in one place: the broker factory (tradedesk/broker/__init__.py).

No app (accounts, orders, market, tradedesk/*.py outside broker/) imports the paper exchange's
or Alpaca's modules (or alpaca-py), or compares provider names to pick behaviour: it asks the
factory or the broker interface. Each offence is reported as file:line.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

from .source_scan import ROOT, imported_modules, module_of, source_files

APPS = ("accounts", "orders", "market", "portfolio", "gateway")
PROVIDER_MODULES = ("tradedesk.broker.sim", "tradedesk.broker.alpaca", "alpaca")
# Where the provider names are defined as data (the model's choices): not a decision.
DEFINES_PROVIDERS = {Path("accounts/models.py")}

_NAME = r"""["'](?:sim|alpaca)["']"""
PROVIDER_DECISIONS = [
    # account.provider == ..., provider in (...), settings.MARKET_DATA_PROVIDER != ...
    re.compile(r"provider\b\s*(?:==|!=|\bnot\s+in\b|\bin\b)", re.IGNORECASE),
    re.compile(r"(?:==|!=)\s*[\w.]*provider\b", re.IGNORECASE),
    re.compile(rf"(?:==|!=)\s*{_NAME}|{_NAME}\s*(?:==|!=)"),
    # BrokerAccount.PROVIDER_SIM in a filter, a comparison, a branch
    re.compile(r"\bPROVIDER_(?:SIM|ALPACA)\b"),
    # a queryset narrowed to one provider by name
    re.compile(rf"\.(?:filter|exclude|get)\([^)]*\bprovider(?:__\w+)?\s*=\s*{_NAME}"),
    # the deployment's market-data provider is the factory's to read
    re.compile(r"\bsettings\.MARKET_DATA_PROVIDER\b"),
]


def app_files() -> list[Path]:
    # broker/ is the provider layer itself
    return source_files(*APPS, "tradedesk/*.py")


def provider_imports(source: str, module: str) -> list[tuple[int, str]]:
    """(line, module) of every import of a provider module in `source` (the file `module`)."""
    found = []
    for line, names in imported_modules(source, module):
        for name in names:
            if any(name == m or name.startswith(m + ".") for m in PROVIDER_MODULES):
                found.append((line, name))
                break
    return found


def _code_only(source: str) -> str:
    """The source with comments and docstrings blanked (line numbers kept)."""
    lines = source.splitlines(keepends=True)
    previous = tokenize.NEWLINE
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        blank = token.type == tokenize.COMMENT or (
            token.type == tokenize.STRING
            and previous in (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT)
        )
        if blank:
            (row, col), (end_row, end_col) = token.start, token.end
            for r in range(row, end_row + 1):
                line = lines[r - 1]
                start = col if r == row else 0
                stop = end_col if r == end_row else len(line.rstrip("\n"))
                lines[r - 1] = line[:start] + " " * (stop - start) + line[stop:]
        if token.type not in (tokenize.COMMENT, tokenize.NL):
            previous = token.type
    return "".join(lines)


def provider_comparisons(source: str) -> list[tuple[int, str]]:
    """(line, code) of every provider-name decision in `source`."""
    found = []
    for number, line in enumerate(_code_only(source).splitlines(), start=1):
        if any(pattern.search(line) for pattern in PROVIDER_DECISIONS):
            found.append((number, line.strip()))
    return found


def offences(path: Path) -> list[str]:
    source = path.read_text()
    relative = path.relative_to(ROOT)
    found = [
        f"{relative}:{line}: imports {name}"
        for line, name in provider_imports(source, module_of(path))
    ]
    if relative not in DEFINES_PROVIDERS:
        found += [
            f"{relative}:{line}: decides by provider name: {code}"
            for line, code in provider_comparisons(source)
        ]
    return found


def test_no_app_imports_a_provider_or_compares_provider_names():
    files = app_files()
    assert len(files) > 40  # the scan sees the apps (a wrong ROOT would pass vacuously)
    found = [offence for path in files for offence in offences(path)]
    assert not found, "provider decisions outside tradedesk/broker/:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "code",
    [
        'if broker.provider == "sim":',
        "if account.provider != BrokerAccount.PROVIDER_ALPACA:",
        'if "alpaca" == provider:',
        "if settings.MARKET_DATA_PROVIDER == 'alpaca':",
        'if provider in ("sim",):',
        "accounts = BrokerAccount.objects.filter(provider=BrokerAccount.PROVIDER_SIM)",
        'BrokerAccount.objects.exclude(is_active=False, provider="alpaca")',
        "kind = settings.MARKET_DATA_PROVIDER",
    ],
)
def test_each_kind_of_provider_decision_is_caught(code):
    assert provider_comparisons(f"def f():\n    {code}\n        pass\n") == [(2, code)]


@pytest.mark.parametrize(
    "code",
    [
        'key = f"validation:quote:{broker.provider}:{symbol}"',
        'services.link_broker_account(user=user, provider="alpaca", label=label)',
        "# if broker.provider == 'sim': a comment is no decision",
        "provider=opened.provider,",
    ],
)
def test_data_that_names_a_provider_is_no_decision(code):
    assert provider_comparisons(f'"""The provider == "sim" here is a docstring."""\n{code}\n') == []


@pytest.mark.parametrize(
    ("code", "module"),
    [
        ("from tradedesk.broker.sim.exchange import open_account", "tradedesk.broker.sim.exchange"),
        ("from tradedesk.broker.sim import exchange", "tradedesk.broker.sim"),
        ("from tradedesk.broker import alpaca", "tradedesk.broker.alpaca"),
        ("import alpaca.trading.client", "alpaca.trading.client"),
        ("from .broker.alpaca import AlpacaBroker", "tradedesk.broker.alpaca"),
    ],
)
def test_provider_imports_are_caught_absolute_or_relative(code, module):
    assert provider_imports(code, "tradedesk.health") == [(1, module)]


def test_the_factory_and_the_interface_are_fine_to_import():
    source = (
        "from tradedesk.broker import get_broker, types\nfrom tradedesk.broker.base import Broker"
    )
    assert provider_imports(source, "orders.services") == []
