"""The repository's own Python sources and what each imports, read with `ast` (nothing is run).

Shared by the architecture tests (the provider boundary, the layering).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def source_files(*places: str) -> list[Path]:
    """The non-test .py files under each place (a folder, or a glob such as "tradedesk/*.py")."""
    files = set()
    for place in places:
        found = ROOT.glob(place) if "*" in place else (ROOT / place).rglob("*.py")
        files.update(found)
    return sorted(p for p in files if "tests" not in p.relative_to(ROOT).parts)


def module_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def imported_modules(source: str, module: str) -> list[tuple[int, list[str]]]:
    """(line, names) of every import in `source` (the file `module`), relative ones resolved.

    `from a.b import c` names "a.b" and "a.b.c" (c may be a submodule).
    """
    package = module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, node.module] if node.module else base)
            names = [target] + [f"{target}.{alias.name}" for alias in node.names]
        else:
            continue
        found.append((node.lineno, names))
    return found
