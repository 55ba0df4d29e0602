"""The stacks one machine can run side by side, and their ports (one table holds every
per-profile difference)."""

from __future__ import annotations

from dataclasses import dataclass

HOST = "127.0.0.1"  # every service binds the loopback only


@dataclass(frozen=True)
class Profile:
    name: str
    supabase_port: int  # nginx, the "Supabase URL"
    pg_port: int
    postgrest_port: int
    api_port: int | None  # None: no API of ours (tests start their own servers)
    cors_origins: str
    seed_demo: bool
    write_env_file: bool
    pg_settings: tuple[str, ...] = ()  # extra `postgres -c` settings

    # pgbouncer in front of Postgres, standing in for Supavisor's session pooler (5432 on
    # hosted Supabase) and transaction pooler (6543): the two ports after Postgres's + 1
    @property
    def pooler_session_port(self) -> int:
        return self.pg_port + 2

    @property
    def pooler_transaction_port(self) -> int:
        return self.pg_port + 3


PROFILES = {
    "dev": Profile(
        "dev",
        54321,
        54322,
        54323,
        8000,
        cors_origins="http://localhost:3000,http://localhost:5173",
        seed_demo=True,
        write_env_file=True,
    ),
    "test": Profile(
        "test",
        25321,
        25322,
        25323,
        None,
        cors_origins="http://127.0.0.1:5500",
        seed_demo=False,
        write_env_file=False,
        pg_settings=("fsync=off", "synchronous_commit=off", "full_page_writes=off"),
    ),
}
# Parallel test stacks for developers working side by side: DEV_TEST_SLOT=N (1-9) makes
# `test` use profile testN on ports 25321+10N.. (CI and a lone developer use plain `test`).
# Test ports sit below Linux's ephemeral range (32768-60999), so an outgoing connection
# can never be holding one of them when a test stack starts.
for _slot in range(1, 10):
    PROFILES[f"test{_slot}"] = Profile(
        f"test{_slot}",
        25321 + 10 * _slot,
        25322 + 10 * _slot,
        25323 + 10 * _slot,
        None,
        cors_origins="http://127.0.0.1:5500",
        seed_demo=False,
        write_env_file=False,
        pg_settings=PROFILES["test"].pg_settings,
    )


def slot_profile(slot: str) -> str:
    """The profile `scripts/dev test` uses for DEV_TEST_SLOT=slot ("" when unset)."""
    return "test" + slot
