"""pgbouncer as Supavisor's stand-in: one process per mode, on the profile's ports."""

from __future__ import annotations

from scripts.devstack.pooler import MODES, pooler_ini, userlist

SECRET = {"postgres_password": 'pw"x'}


def test_the_two_poolers_sit_after_the_postgres_port(tmp_stack):
    p = tmp_stack.profile
    assert (p.pooler_session_port, p.pooler_transaction_port) == (p.pg_port + 2, p.pg_port + 3)
    ports = {tmp_stack.port(s) for s in tmp_stack.services()}
    assert len(ports) == len(tmp_stack.services())  # no two services share a port
    assert tmp_stack.services()[:3] == ["postgres", "pooler-session", "pooler-transaction"]


def test_each_pooler_runs_its_mode_on_its_port_in_front_of_postgres(tmp_stack):
    for service, mode in MODES.items():
        ini = pooler_ini(tmp_stack, service, None).splitlines()
        assert f"pool_mode = {mode}" in ini
        assert f"listen_port = {tmp_stack.port(service)}" in ini
        assert "listen_addr = 127.0.0.1" in ini
        # any database name passes through (the bootstrap's scratch databases)
        assert f"* = host=127.0.0.1 port={tmp_stack.profile.pg_port}" in ini
        assert "auth_type = scram-sha-256" in ini
        assert not any(line.startswith("user =") for line in ini)


def test_as_root_pgbouncer_drops_to_the_postgres_os_user(tmp_stack):
    assert "user = postgres" in pooler_ini(tmp_stack, "pooler-session", "postgres").splitlines()


def test_userlist_quotes_the_password():
    assert userlist(SECRET) == '"postgres" "pw""x"\n'
