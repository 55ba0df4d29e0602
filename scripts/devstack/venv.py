"""The project's virtualenv (.venv): requirements-dev.txt, then the project itself as an
editable install; each step reruns only when the files it depends on change."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from .output import rel, step
from .paths import REPO, VENV, VENV_PY
from .proc import run

VENV_STAMP = VENV / ".requirements.sha256"  # hash of requirements*.txt last installed
PROJECT_STAMP = VENV / ".project.sha256"  # hash of pyproject.toml last installed


def requirements_hash(repo: Path = REPO) -> str:
    digest = hashlib.sha256()
    for path in sorted(repo.glob("requirements*.txt")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def project_hash(repo: Path = REPO) -> str:
    return hashlib.sha256((repo / "pyproject.toml").read_bytes()).hexdigest()


def stamped(stamp: Path, wanted: str) -> bool:
    return stamp.exists() and stamp.read_text().strip() == wanted


def pip(*args: str) -> list[str]:
    return [str(VENV_PY), "-m", "pip", "install", "-q", "--progress-bar", "off", *args]


def ensure_venv() -> None:
    if VENV_PY.exists() and subprocess.run([str(VENV_PY), "-c", ""]).returncode != 0:
        step(f"{rel(VENV)} is broken (its Python does not start); recreating it")
        shutil.rmtree(VENV)
    if not VENV_PY.exists():
        step(f"creating {rel(VENV)} ({sys.executable} -m venv)")
        run(
            [sys.executable, "-m", "venv", str(VENV)],
            "creating the virtualenv",
            "on Debian install `python3-venv` (apt-get install -y python3-venv)",
        )
    wanted = requirements_hash()
    if not stamped(VENV_STAMP, wanted):
        step("installing Python packages (pip install -r requirements-dev.txt)")
        run(
            pip("-r", str(REPO / "requirements-dev.txt")),
            "pip install -r requirements-dev.txt",
            "see the pip output above; check that PyPI is reachable and the pins exist",
        )
        VENV_STAMP.write_text(wanted + "\n")
    # the app's modules, routers/ and scripts/ import as installed packages (pyproject.toml)
    wanted = project_hash()
    if not stamped(PROJECT_STAMP, wanted):
        step("installing the project into the virtualenv (pip install --no-deps -e .)")
        run(
            pip("--no-deps", "-e", str(REPO)),
            "pip install --no-deps -e .",
            "see the pip output above; check [project] and [tool.setuptools] in pyproject.toml",
        )
        PROJECT_STAMP.write_text(wanted + "\n")
