"""The backend stands on its own: nothing under backend/ imports the Slack app (bot/), and the
CLI's helper modules never import the package that imports them (no cycle). Read from the
source, so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at its top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "backend").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_backend_module_imports_the_slack_app(path):
    assert not {m for m in imported_modules(path) if m == "bot" or m.startswith("bot.")}


@pytest.mark.parametrize("name", ["common", "specs", "stats"])
def test_the_clis_helper_modules_do_not_import_the_cli_package(name):
    imported = imported_modules(ROOT / "backend" / "entrypoints" / "cli" / f"{name}.py")
    # `from backend.entrypoints import cli` or `from backend.entrypoints.cli import x`; a sibling
    # (`backend.entrypoints.cli.common`) is fine.
    assert "backend.entrypoints.cli" not in imported
