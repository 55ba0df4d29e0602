"""One profile's stack on disk: .stack/<profile>/ (logs, pid files, configs, secrets) and
where its Postgres cluster lives."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .paths import REPO
from .proc import pid_alive
from .profiles import HOST, Profile

# service name -> word that must appear in /proc/<pid>/cmdline for the pid to be ours
SERVICES = {"postgres": "postgres", "postgrest": "postgrest", "nginx": "nginx", "api": "uvicorn"}
SERVICE_LOGS = {
    "postgres": "postgres.log",
    "postgrest": "postgrest.log",
    "nginx": "nginx-error.log",
    "api": "api.log",
}
# where a cluster goes when the Postgres OS user cannot reach .stack/<profile>/
PG_FALLBACK_ROOT = (
    Path("/var/tmp") / f"ffb-stack-{hashlib.sha1(str(REPO).encode()).hexdigest()[:8]}"
)


class Stack:
    """Paths and pid files of one profile's stack under .stack/<profile>/."""

    def __init__(self, profile: Profile):
        self.profile = profile
        self.dir = REPO / ".stack" / profile.name
        self.logs = self.dir / "logs"
        self.pids = self.dir / "pids"
        self.secrets_file = self.dir / "secrets.json"
        self.postgrest_conf = self.dir / "postgrest.conf"
        self.nginx_conf = self.dir / "nginx.conf"
        self.nginx_prefix = self.dir / "nginx"

    def make_dirs(self) -> None:
        for path in (self.dir, self.logs, self.pids):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o755)  # the Postgres OS user must be able to traverse .stack/<profile>

    def log(self, service: str) -> Path:
        return self.logs / SERVICE_LOGS[service]

    def port(self, service: str) -> int | None:
        p = self.profile
        return {
            "postgres": p.pg_port,
            "postgrest": p.postgrest_port,
            "nginx": p.supabase_port,
            "api": p.api_port,
        }[service]

    def services(self) -> list[str]:
        """Services of this profile in start order."""
        return [s for s in SERVICES if self.port(s) is not None]

    def pidfile(self, service: str) -> Path:
        if service == "postgres":
            pg = find_pgdirs(self)
            return (pg.data if pg else self.dir / "pgdata") / "postmaster.pid"
        return self.pids / f"{service}.pid"

    def live_pid(self, service: str) -> int | None:
        """The recorded pid of service if that process is still running, else None."""
        try:
            pid = int(self.pidfile(service).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid, SERVICES[service]) else None

    @property
    def supabase_url(self) -> str:
        return f"http://{HOST}:{self.profile.supabase_port}"


@dataclass(frozen=True)
class PgDirs:
    base: Path  # .stack/<profile> or the /var/tmp fallback
    data: Path
    sock: Path
    log: Path  # real log file (logs/postgres.log links to it in the fallback)


def pgdirs_at(stack: Stack, base: Path) -> PgDirs:
    sock = base / "pgsock"
    if len(str(sock)) > 90:  # unix socket paths are limited to ~107 bytes
        sock = Path(tempfile.gettempdir())
    log = stack.log("postgres") if base == stack.dir else base / "postgres.log"
    return PgDirs(base, base / "pgdata", sock, log)


def pg_candidates(stack: Stack) -> list[PgDirs]:
    return [pgdirs_at(stack, stack.dir), pgdirs_at(stack, PG_FALLBACK_ROOT / stack.profile.name)]


def find_pgdirs(stack: Stack) -> PgDirs | None:
    """The initialised cluster of this profile, wherever it lives."""
    for pg in pg_candidates(stack):
        if (pg.data / "PG_VERSION").exists():
            return pg
    return None


def admin_dsn(stack: Stack) -> str | None:
    """The superuser supabase_admin over the cluster's unix socket (trust auth): for this
    script, and for tests that need superuser powers. Never the app's or bootstrap's."""
    pg = find_pgdirs(stack)
    if pg is None:
        return None
    return f"host={pg.sock} port={stack.profile.pg_port} user=supabase_admin dbname=postgres"
