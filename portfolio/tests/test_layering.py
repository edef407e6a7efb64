"""Apps form floors: the portfolio reads orders and accounts; neither ever imports it."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_orders_and_accounts_never_import_the_portfolio():
    offenders = [
        f"{path.relative_to(ROOT)}: {module}"
        for app in ("accounts", "orders", "tradedesk/broker")
        for path in (ROOT / app).rglob("*.py")
        for module in imported_modules(path)
        if module == "portfolio" or module.startswith("portfolio.")
    ]
    assert offenders == []
