"""Fixtures for the tests of scripts/devstack (no stack, no network)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from scripts.devstack.profiles import PROFILES
from scripts.devstack.stack import Stack


@pytest.fixture
def tmp_stack(tmp_path: Path) -> Stack:
    """Profile test2's ports, but a name no real stack has and every file under tmp_path."""
    stack = Stack(dataclasses.replace(PROFILES["test2"], name="unit-devstack"))
    stack.dir = tmp_path / "stack"
    stack.logs = stack.dir / "logs"
    stack.pids = stack.dir / "pids"
    stack.secrets_file = stack.dir / "secrets.json"
    stack.postgrest_conf = stack.dir / "postgrest.conf"
    stack.nginx_conf = stack.dir / "nginx.conf"
    stack.nginx_prefix = stack.dir / "nginx"
    stack.make_dirs()
    return stack
