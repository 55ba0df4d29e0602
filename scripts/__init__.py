"""The project's command-line tools. Each runs by path (`python scripts/users.py`); being a
package lets tests import them as `scripts.<name>` (the project is installed, pyproject.toml)."""
