"""Deployment files: the Procfile command serves, and the Dockerfile, .dockerignore,
.env.example and gunicorn.conf.py agree with it and with config.Settings (so none can rot).

`docker build` cannot run here (no container engine); the Dockerfile is checked as text and
its HEALTHCHECK command is run against a real server.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic_core import PydanticUndefined

from config import ConfigError, Settings, load_settings
from tests.helpers import ROOT, free_port

# Read by gunicorn.conf.py from the environment; documented in .env.example as comments.
PLATFORM_VARIABLES = {
    "PORT",
    "HOST",
    "WEB_CONCURRENCY",
    "HEADER_TIMEOUT_SECONDS",
    "WORKER_CONNECTIONS",
}
# .env.example shows a deliberate value for these rather than the default (it is a
# production template: ENVIRONMENT=prod is checked by the prod test below).
EXAMPLE_VALUES = {"environment": "dev", "cors_origins": ["https://your-frontend.example.com"]}
ASSIGNMENT = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


def procfile_web() -> str:
    [line] = [
        entry for entry in (ROOT / "Procfile").read_text().splitlines() if entry.startswith("web:")
    ]
    return line.removeprefix("web:").strip()


def dockerfile_instruction(name: str) -> str:
    """The instruction's arguments, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    [line] = [entry for entry in text.splitlines() if entry.startswith(f"{name} ")]
    return line.removeprefix(f"{name} ").strip()


def healthcheck_command() -> list[str]:
    args = dockerfile_instruction("HEALTHCHECK")
    return json.loads(args[args.index("CMD ") + 4 :].strip())


def env_example() -> list[str]:
    return (ROOT / ".env.example").read_text().splitlines()


def documented_names() -> dict[str, int]:
    """NAME -> line index, for `NAME=value` and commented-out `# NAME=value` lines."""
    return {m.group(2): i for i, line in enumerate(env_example()) if (m := ASSIGNMENT.match(line))}


# --------------------------------------------------------------------------------------
# The Procfile command, as a platform runs it
# --------------------------------------------------------------------------------------
def test_procfile_web_command_serves_health(start_server):
    venv_bin = Path(sys.executable).parent
    command = shlex.split(procfile_web())
    assert command[0] == "gunicorn"
    base = start_server(cmd=command, env={"PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}"})
    response = httpx.get(f"{base}/health", timeout=5)
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response.headers["x-request-id"]

    # The image's HEALTHCHECK passes against it and fails where nothing listens.
    check = healthcheck_command()
    port = base.rsplit(":", 1)[1]
    ok = subprocess.run(check, env={**os.environ, "PORT": port}, capture_output=True, timeout=10)
    assert ok.returncode == 0, ok.stderr
    down = subprocess.run(
        check, env={**os.environ, "PORT": str(free_port())}, capture_output=True, timeout=10
    )
    assert down.returncode != 0


# --------------------------------------------------------------------------------------
# Dockerfile and .dockerignore
# --------------------------------------------------------------------------------------
def test_dockerfile_cmd_is_the_procfile_command():
    assert json.loads(dockerfile_instruction("CMD")) == shlex.split(procfile_web())


def test_dockerfile_is_slim_non_root_runtime_only_on_port_8000():
    text = (ROOT / "Dockerfile").read_text()
    assert dockerfile_instruction("FROM") == "python:3.11-slim"
    user = dockerfile_instruction("USER")
    assert user not in ("root", "0")
    assert text.index("USER ") < text.index("\nCMD ")
    assert re.search(r"^RUN pip install -r requirements\.txt$", text, re.M)
    assert "requirements-dev" not in text and "curl" not in text.split("HEALTHCHECK")[1]
    assert re.search(r"\bPORT=8000\b", dockerfile_instruction("ENV"))
    assert healthcheck_command()[:2] == ["python", "-c"]


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_image():
    ignored = {
        entry.strip()
        for entry in (ROOT / ".dockerignore").read_text().splitlines()
        if entry.strip() and not entry.startswith("#")
    }
    assert {
        ".venv",
        ".cache",
        ".stack",
        ".env",
        ".bench",
        ".git",
        ".pytest_cache",
        ".hypothesis",
        "**/__pycache__",
    } <= ignored


# --------------------------------------------------------------------------------------
# .env.example documents every setting
# --------------------------------------------------------------------------------------
def test_env_example_lists_every_settings_field_with_a_comment():
    lines, names = env_example(), documented_names()
    missing = [f.upper() for f in Settings.model_fields if f.upper() not in names]
    assert missing == [], f".env.example lacks {missing}"
    for name, index in names.items():
        above = lines[index - 1]
        assert above.startswith("# ") and not ASSIGNMENT.match(above), (
            f"{name} needs a one-line comment right above it"
        )


def test_env_example_names_only_real_settings():
    known = {f.upper() for f in Settings.model_fields} | PLATFORM_VARIABLES
    assert sorted(set(documented_names()) - known) == []


def test_env_example_shows_the_real_defaults(monkeypatch):
    for name in list(Settings.model_fields) + ["ENV_FILE"]:
        monkeypatch.delenv(name.upper(), raising=False)
    settings = Settings(_env_file=ROOT / ".env.example", environment="dev")
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if name in EXAMPLE_VALUES:
            assert value == EXAMPLE_VALUES[name]
        elif field.is_required():
            continue  # placeholders
        else:
            default = (
                field.default if field.default is not PydanticUndefined else field.default_factory()
            )
            assert value == default, (
                f"{name.upper()}: .env.example shows {value!r}, the default is {default!r}"
            )


def test_env_example_as_is_is_refused_in_prod(monkeypatch):
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    assert "ENVIRONMENT=prod" in env_example()
    monkeypatch.setenv("ENV_FILE", str(ROOT / ".env.example"))
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        load_settings()


# --------------------------------------------------------------------------------------
# gunicorn.conf.py
# --------------------------------------------------------------------------------------
def gunicorn_conf(monkeypatch, **env: str) -> dict:
    for name in ("WEB_CONCURRENCY", "PORT", "HOST", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_gunicorn_workers_come_from_web_concurrency_default_2(monkeypatch):
    assert gunicorn_conf(monkeypatch)["workers"] == 2
    assert gunicorn_conf(monkeypatch, WEB_CONCURRENCY="5")["workers"] == 5


def test_gunicorn_binds_port_default_8000_and_leaves_access_log_to_the_app(monkeypatch):
    conf = gunicorn_conf(monkeypatch)
    assert conf["bind"] == "0.0.0.0:8000"
    assert gunicorn_conf(monkeypatch, PORT="5123")["bind"] == "0.0.0.0:5123"
    assert conf["accesslog"] is None
    from uvicorn.workers import UvicornWorker

    assert issubclass(conf["worker_class"], UvicornWorker)
    assert conf["worker_class"].CONFIG_KWARGS["server_header"] is False
    assert conf["worker_class"].CONFIG_KWARGS["proxy_headers"] is False
    assert 0 < conf["graceful_timeout"] <= 30  # platforms SIGKILL 30 s after SIGTERM
