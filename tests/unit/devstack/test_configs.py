"""The config files and commands the stack's servers are started with."""

from __future__ import annotations

import os
import subprocess

import pytest

from scripts.devstack.install import nginx_binary
from scripts.devstack.nginx import nginx_args, nginx_conf
from scripts.devstack.postgres import as_user, server_options
from scripts.devstack.postgrest import postgrest_conf
from scripts.devstack.roles import roles_sql, sql_literal
from scripts.devstack.stack import pgdirs_at

SECRET = {
    "authenticator_password": "auth-pw",
    "postgres_password": "pg'pw",
    "jwt_secret": "jwt-secret",
}


def test_postgrest_conf_connects_as_authenticator_and_listens_on_the_profile_port(tmp_stack):
    conf = postgrest_conf(tmp_stack, SECRET)
    assert 'db-uri = "postgres://authenticator:auth-pw@127.0.0.1:25342/postgres"' in conf
    assert 'jwt-secret = "jwt-secret"' in conf
    assert 'db-anon-role = "anon"' in conf
    assert "server-port = 25343\n" in conf
    assert 'server-host = "127.0.0.1"' in conf


def test_nginx_proxies_rest_v1_to_postgrest(tmp_stack):
    conf = nginx_conf(tmp_stack, absent=set(), as_root=False)
    assert "listen 127.0.0.1:25341;" in conf
    assert "server 127.0.0.1:25343;" in conf
    assert "location /rest/v1/ {" in conf and "proxy_pass http://postgrest_upstream/;" in conf
    assert f"error_log {tmp_stack.log('nginx')} warn;" in conf
    assert "user root;" not in conf


def test_nginx_conf_skips_temp_paths_of_absent_modules_and_keeps_root_workers(tmp_stack):
    conf = nginx_conf(tmp_stack, absent={"uwsgi", "scgi"}, as_root=True)
    assert conf.splitlines()[1] == "user root;"
    assert f"proxy_temp_path {tmp_stack.nginx_prefix}/tmp/proxy;" in conf
    assert "uwsgi_temp_path" not in conf and "scgi_temp_path" not in conf


@pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed")
def test_nginx_accepts_the_conf(tmp_stack):
    (tmp_stack.nginx_prefix / "tmp").mkdir(parents=True)
    tmp_stack.nginx_conf.write_text(nginx_conf(tmp_stack, set(), as_root=os.geteuid() == 0))
    proc = subprocess.run(
        [str(nginx_binary()), "-t", "-q", *nginx_args(tmp_stack)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_postgres_options_carry_the_port_socket_and_profile_settings(tmp_stack):
    pg = pgdirs_at(tmp_stack, tmp_stack.dir)
    options = server_options(tmp_stack, pg)
    assert options.startswith("-p 25342 -c listen_addresses=127.0.0.1 ")
    assert f"-c unix_socket_directories={pg.sock}" in options
    assert options.endswith("-c fsync=off -c synchronous_commit=off -c full_page_writes=off")


def test_postgres_runs_as_the_given_os_user():
    assert as_user("postgres", ["pg_ctl", "start"]) == [
        "runuser",
        "-u",
        "postgres",
        "--",
        "pg_ctl",
        "start",
    ]
    assert as_user(None, ["pg_ctl", "start"]) == ["pg_ctl", "start"]


def test_long_cluster_paths_put_the_socket_in_the_temp_dir(tmp_stack, tmp_path):
    pg = pgdirs_at(tmp_stack, tmp_path / ("x" * 100))
    assert pg.sock != pg.base / "pgsock" and len(str(pg.sock)) < 90
    assert pg.log == pg.base / "postgres.log"  # outside .stack/<profile>: logs/ links to it


def test_roles_sql_quotes_passwords_and_keeps_postgres_no_superuser():
    assert sql_literal("it's") == "'it''s'"
    sql = roles_sql(SECRET)
    assert "ALTER ROLE authenticator WITH PASSWORD 'auth-pw';" in sql
    assert (
        "ALTER ROLE postgres WITH NOSUPERUSER CREATEDB CREATEROLE LOGIN REPLICATION BYPASSRLS "
        "PASSWORD 'pg''pw';"
    ) in sql
    assert "CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;" in sql
    assert "GRANT anon, authenticated, service_role TO authenticator;" in sql
