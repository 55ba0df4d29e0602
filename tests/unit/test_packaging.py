"""pyproject.toml declares every module and package of the project, so that the editable
install (`pip install --no-deps -e .`) makes all of them importable without sys.path edits."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

from tests.helpers import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
NOT_MODULES = {"gunicorn.conf"}  # gunicorn's config file, run by gunicorn, never imported


def test_every_top_level_module_is_declared():
    found = {path.stem for path in ROOT.glob("*.py")} - NOT_MODULES
    declared = PYPROJECT["tool"]["setuptools"]["py-modules"]
    assert sorted(declared) == sorted(found), "pyproject.toml [tool.setuptools] py-modules"


def packages(directory: Path = ROOT, prefix: str = "") -> Iterator[str]:
    """Every package (a directory with __init__.py) and sub-package under `directory`."""
    for path in sorted(directory.iterdir()):
        if path.is_dir() and not path.name.startswith(".") and (path / "__init__.py").exists():
            yield prefix + path.name
            yield from packages(path, f"{prefix}{path.name}.")


def test_every_package_is_declared():
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    missing = [name for name in packages() if not any(fnmatch(name, p) for p in include)]
    assert missing == [], "pyproject.toml [tool.setuptools.packages.find] include"
    assert {"routers", "scripts", "tests", "tests.unit"} <= set(packages())


def test_no_sys_path_edits():
    """Scripts and tests import the installed project; nothing puts paths on sys.path."""
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py", "scripts/dev"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    edit = re.compile(r"\bsys\.path\s*(\.\s*(insert|append|extend)\b|\[|\+?=)")
    editing = [name for name in tracked if edit.search((ROOT / name).read_text())]
    assert editing == []


def test_the_project_imports_from_outside_the_repository(tmp_path):
    """From another directory and without PYTHONPATH: only the install can find it."""
    code = "import main, routers.health, scripts.contract_diff, tests.helpers"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
