from __future__ import annotations

from scripts.devstack.profiles import HOST, PROFILES, slot_profile
from scripts.devstack.stack import Stack


def test_dev_profile_serves_the_api_on_8000_and_supabase_on_54321():
    dev = PROFILES["dev"]
    assert (dev.supabase_port, dev.pg_port, dev.postgrest_port, dev.api_port) == (
        54321,
        54322,
        54323,
        8000,
    )
    assert dev.write_env_file and dev.seed_demo


def test_test_slot_n_shifts_the_test_ports_by_ten_n():
    for slot in range(1, 10):
        p = PROFILES[slot_profile(str(slot))]
        assert p.name == f"test{slot}"
        assert (p.supabase_port, p.pg_port, p.postgrest_port) == (
            25321 + 10 * slot,
            25322 + 10 * slot,
            25323 + 10 * slot,
        )
        assert p.api_port is None and not p.write_env_file and not p.seed_demo
        assert p.pg_settings == PROFILES["test"].pg_settings


def test_no_dev_test_slot_means_the_plain_test_profile():
    assert slot_profile("") == "test"
    assert PROFILES["test"].pg_port == 25322
    assert "fsync=off" in PROFILES["test"].pg_settings


def test_no_two_profiles_share_a_port_and_test_ports_avoid_the_ephemeral_range():
    ports = [
        port
        for p in PROFILES.values()
        for port in (p.supabase_port, p.pg_port, p.postgrest_port, p.api_port)
        if port is not None
    ]
    assert len(ports) == len(set(ports))
    assert all(
        port < 32768
        for name, p in PROFILES.items()
        if name.startswith("test")
        for port in (p.supabase_port, p.pg_port, p.postgrest_port)
    )


def test_stack_services_in_start_order_and_their_ports():
    test2 = Stack(PROFILES["test2"])
    poolers = ["pooler-session", "pooler-transaction"]
    assert test2.services() == ["postgres", *poolers, "postgrest", "nginx"]
    assert [test2.port(s) for s in test2.services()] == [25342, 25344, 25345, 25343, 25341]
    assert test2.supabase_url == f"http://{HOST}:25341"
    assert Stack(PROFILES["dev"]).services() == ["postgres", *poolers, "postgrest", "nginx", "api"]


def test_stack_files_live_under_dot_stack_profile():
    stack = Stack(PROFILES["test2"])
    assert stack.dir.parts[-2:] == (".stack", "test2")
    assert stack.log("nginx") == stack.dir / "logs" / "nginx-error.log"
    assert stack.pidfile("postgrest") == stack.dir / "pids" / "postgrest.pid"
