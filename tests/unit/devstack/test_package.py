"""scripts/dev and its package run before the virtualenv exists: standard library only."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SOURCES = [ROOT / "scripts" / "dev", *sorted((ROOT / "scripts" / "devstack").glob("*.py"))]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_imports_only_the_standard_library_and_the_package(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    outside = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top not in ("__future__", "devstack"):
                outside.append(name)
    assert outside == []


def test_package_modules_import_each_other_relatively():
    for path in SOURCES[1:]:
        tree = ast.parse(path.read_text())
        absolute = [
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 0
            if node.module and node.module.split(".")[0] == "devstack"
        ]
        assert absolute == [], path.name


def test_entry_point_stays_short():
    assert len((ROOT / "scripts" / "dev").read_text().splitlines()) <= 300
