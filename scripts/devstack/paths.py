"""Where the repository and its git-ignored tool state are."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "dev"  # the entry point; tests call it as DEV_SCRIPT
CACHE = REPO / ".cache"
VENV = REPO / ".venv"
VENV_PY = VENV / "bin" / "python"
