"""Supabase's roles and privileges as on a hosted project, set through psql as the
cluster's superuser supabase_admin (unix socket, trust auth)."""

from __future__ import annotations

from .install import pg_tool
from .output import StackError, rel, step
from .proc import run
from .stack import Stack, find_pgdirs

# hosted Supabase's `postgres`: the admin's role, deliberately not a superuser
POSTGRES_ROLE = "NOSUPERUSER CREATEDB CREATEROLE LOGIN REPLICATION BYPASSRLS"


def psql_admin(stack: Stack, sql: str, what: str) -> None:
    """Run sql as the superuser supabase_admin over the cluster's unix socket (trust auth)."""
    pg = find_pgdirs(stack)
    if pg is None:
        raise StackError(f"{what} failed: no Postgres cluster for profile {stack.profile.name}")
    run(
        [
            pg_tool("psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(pg.sock),
            "-p",
            str(stack.profile.pg_port),
            "-U",
            "supabase_admin",
            "-d",
            "postgres",
        ],
        what,
        f"see {rel(stack.log('postgres'))}",
        input=sql,
        quiet=True,
    )


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def memberships_sql(major: int) -> str:
    """What `postgres` is a member of, as on hosted Supabase's image of that major.

    PostgreSQL 15: a plain member of the API roles, not of authenticator. PostgreSQL 16+
    lets a CREATEROLE role alter (e.g. `alter role authenticator set pgrst.db_pre_request`)
    only the roles it holds ADMIN OPTION on, and hosted Supabase's 17 images grant exactly
    that: `GRANT <role> TO postgres WITH ADMIN OPTION, INHERIT TRUE` for anon,
    authenticated, service_role and authenticator (supabase/postgres's role dump)."""
    if major < 16:
        return "GRANT anon, authenticated, service_role TO postgres;"
    return (
        "GRANT anon, authenticated, service_role, authenticator TO postgres "
        "WITH ADMIN OPTION, INHERIT TRUE;"
    )


def roles_sql(secret: dict[str, str], major: int = 15) -> str:
    """Create Supabase's roles where missing, set the passwords from secrets.json, and give
    `postgres` what hosted Supabase gives it on this major."""
    create = {
        "anon": "NOLOGIN NOINHERIT",
        "authenticated": "NOLOGIN NOINHERIT",
        "service_role": "NOLOGIN NOINHERIT BYPASSRLS",
        "authenticator": "LOGIN NOINHERIT",
        "postgres": POSTGRES_ROLE,
    }
    body = "\n".join(
        f"  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN "
        f"CREATE ROLE {role} {attrs}; END IF;"
        for role, attrs in create.items()
    )
    api_roles = "anon, authenticated, service_role"
    return f"""
SET client_min_messages = warning;
DO $$
BEGIN
{body}
END
$$;
GRANT {api_roles} TO authenticator;
ALTER ROLE authenticator WITH PASSWORD {sql_literal(secret["authenticator_password"])};
-- hosted Supabase's `postgres`: no superuser, a member of the API roles (on 17 also of
-- authenticator, all WITH ADMIN OPTION), owner of public, allowed to set PostgREST's
-- pre-request hook (supautils there; GRANT SET ON PARAMETER here)
ALTER ROLE postgres WITH {POSTGRES_ROLE} PASSWORD {sql_literal(secret["postgres_password"])};
{memberships_sql(major)}
ALTER SCHEMA public OWNER TO postgres;
GRANT SET ON PARAMETER pgrst.db_pre_request TO postgres;
-- as on hosted Supabase: `postgres` may create schemas and trusted extensions (migration
-- 0009: pg_trgm, unaccent), which live in schema `extensions`
GRANT CREATE ON DATABASE postgres TO postgres;
CREATE SCHEMA IF NOT EXISTS extensions AUTHORIZATION postgres;
GRANT USAGE ON SCHEMA extensions TO {api_roles};
-- as on hosted Supabase: the API roles may use public, and objects postgres (or
-- supabase_admin) creates there are granted to them, so our SQL must revoke what it
-- does not mean to give
GRANT USAGE ON SCHEMA public TO {api_roles};
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON TABLES TO {api_roles};
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON SEQUENCES TO {api_roles};
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON FUNCTIONS TO {api_roles};
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public GRANT ALL ON TABLES TO {api_roles};
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public GRANT ALL ON SEQUENCES TO {api_roles};
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public GRANT ALL ON FUNCTIONS TO {api_roles};
"""


def ensure_roles(stack: Stack, secret: dict[str, str]) -> None:
    """Supabase's roles as on a hosted project (created only where missing), passwords from
    secrets.json, and what hosted Supabase gives `postgres`."""
    step("ensuring Supabase roles postgres, anon, authenticated, service_role, authenticator")
    psql_admin(stack, roles_sql(secret, stack.major), "creating the Supabase roles")
