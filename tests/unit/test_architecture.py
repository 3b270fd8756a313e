"""The lines the architecture draws that import-linter cannot see (pyproject.toml holds the rest)."""

from __future__ import annotations

import ast
from pathlib import Path

from connector.settings import SETTING_NAMES, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_function_app_imports_only_the_connector_and_the_functions_library():
    tree = ast.parse((ROOT / "function_app.py").read_text())
    imported = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {"json", "typing", "azure", "connector"}, imported


def test_settings_are_read_from_the_names_the_parts_are_keyed_by():
    """bootstrap keeps one set of parts per distinct settings: a setting read but not in SETTING_NAMES would be
    missed when it changes."""
    read: list[str] = []

    class Recording(dict[str, str]):
        def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
            read.append(key)
            return super().get(key, default)

    load_settings(Recording())
    assert set(read) <= set(SETTING_NAMES), set(read) - set(SETTING_NAMES)
