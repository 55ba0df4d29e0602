"""One profile's stack on disk: .stack/<profile>/ (logs, pid files, configs, secrets) and
where its Postgres cluster lives."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .majors import DEFAULT_MAJOR
from .output import StackError
from .paths import REPO
from .proc import pid_alive
from .profiles import HOST, Profile

# service name -> word that must appear in /proc/<pid>/cmdline for the pid to be ours
SERVICES = {
    "postgres": "postgres",
    "pooler-session": "pgbouncer",
    "pooler-transaction": "pgbouncer",
    "postgrest": "postgrest",
    "nginx": "nginx",
    "api": "uvicorn",
}
SERVICE_LOGS = {
    "postgres": "postgres.log",
    "pooler-session": "pooler-session.log",
    "pooler-transaction": "pooler-transaction.log",
    "postgrest": "postgrest.log",
    "nginx": "nginx-error.log",
    "api": "api.log",
}
# each major's cluster has a directory of its own (15 keeps the name it always had)
PGDATA_NAMES = {15: "pgdata", 17: "pgdata-17"}
# where a cluster goes when the Postgres OS user cannot reach .stack/<profile>/
PG_FALLBACK_ROOT = (
    Path("/var/tmp") / f"ffb-stack-{hashlib.sha1(str(REPO).encode()).hexdigest()[:8]}"
)


class Stack:
    """Paths and pid files of one profile's stack under .stack/<profile>/."""

    def __init__(self, profile: Profile, major: int = DEFAULT_MAJOR):
        self.profile = profile
        self.major = major  # the PostgreSQL major this stack runs (majors.py)
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
            "pooler-session": p.pooler_session_port,
            "pooler-transaction": p.pooler_transaction_port,
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
            return (pg.data if pg else self.dir / PGDATA_NAMES[self.major]) / "postmaster.pid"
        return self.pids / f"{service}.pid"

    def live_pid(self, service: str) -> int | None:
        """The recorded pid of service if that process is still running, else None."""
        try:
            pid = int(self.pidfile(service).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid, SERVICES[service]) else None

    @property
    def major_file(self) -> Path:
        """The major whose Postgres this profile last started (for stop, status, *-service)."""
        return self.dir / "postgres-major"

    def recorded_major(self) -> int | None:
        try:
            major = int(self.major_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return major if major in PGDATA_NAMES else None

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
    return PgDirs(base, base / PGDATA_NAMES[stack.major], sock, log)


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


def running_major(profile: Profile) -> int | None:
    """The major whose Postgres of this profile runs (ours, by its postmaster.pid), if any."""
    for major in PGDATA_NAMES:
        if Stack(profile, major).live_pid("postgres") is not None:
            return major
    return None


def stack_for(profile: Profile, wanted: int | None, command: str) -> Stack:
    """The stack a command acts on. `wanted`: --postgres or $DEV_POSTGRES (None: neither).

    `up`, `start`: the wanted major, else the default (17); refused while this profile's
    Postgres of the other major runs (one port). `test`: the wanted major, else the
    default (it stops leftovers of either major itself). Acting on what is there (stop,
    status, start-/stop-service): the wanted major, else the one that runs, else the one
    last started, else the default."""
    if command in ("up", "start", "test"):
        major = wanted or DEFAULT_MAJOR
        other = running_major(profile) if command != "test" else None
        if other is not None and other != major:
            flag = "" if profile.name == "dev" else f" --profile {profile.name}"
            raise StackError(
                f"PostgreSQL {other} of profile {profile.name} is running; it cannot run "
                f"beside {major} (same port)",
                f"`scripts/dev{flag} stop` first (its data stays), then start again",
            )
        return Stack(profile, major)
    probe = Stack(profile)
    return Stack(
        profile, wanted or running_major(profile) or probe.recorded_major() or DEFAULT_MAJOR
    )
