"""The worker's background loops: the schema bootstrap until it succeeds, audit pruning, and
(issue 23) recurring expenses where the database has no pg_cron.

Both run their synchronous psycopg2 work in a thread, log what happened (never data) and retry.
"""

from __future__ import annotations

import asyncio
import logging

import migrate
from config import Settings
from database import connect

log = logging.getLogger("ffb")
BOOTSTRAP_RETRY_SECONDS = 10
AUDIT_PRUNE_INTERVAL_SECONDS = 6 * 3600


async def bootstrap_until_done(settings: Settings) -> None:
    """Verify the schema and create what is missing; if Postgres is not up yet, keep
    trying in the background (the API answers 503 until it is)."""
    dsn = settings.database_url.get_secret_value()
    while True:
        try:
            applied = await asyncio.to_thread(migrate.ensure_schema, dsn)
            if applied:
                log.info("schema bootstrapped", extra={"changes": applied})
            return
        except (migrate.SchemaRefused, migrate.MigrationFailed) as exc:
            # names a file and checksums or the first line of a SQL error, never data
            log.error(
                "schema bootstrap refused, retrying in %ss: %s (run "
                "scripts/bootstrap_schema.py --check)",
                BOOTSTRAP_RETRY_SECONDS,
                exc,
            )
            await asyncio.sleep(BOOTSTRAP_RETRY_SECONDS)
        except Exception as exc:  # noqa: BLE001 - logged, retried
            log.warning(
                "schema bootstrap failed, retrying in %ss: %s",
                BOOTSTRAP_RETRY_SECONDS,
                type(exc).__name__,
            )
            await asyncio.sleep(BOOTSTRAP_RETRY_SECONDS)


async def prune_audit_periodically(settings: Settings) -> None:
    """AUDIT_RETENTION_DAYS: drop older audit rows now and every few hours (over
    DATABASE_URL, as the owner; several workers doing it at once is harmless)."""
    dsn = settings.database_url.get_secret_value()
    while True:
        try:
            deleted = await asyncio.to_thread(prune_audit_log, dsn, settings.audit_retention_days)
            if deleted:
                log.info(
                    "audit log pruned",
                    extra={"deleted": deleted, "retention_days": settings.audit_retention_days},
                )
        except Exception as exc:  # noqa: BLE001 - logged, retried at the next interval
            log.warning("audit log pruning failed: %s", type(exc).__name__)
        await asyncio.sleep(AUDIT_PRUNE_INTERVAL_SECONDS)


def prune_audit_log(dsn: str, retention_days: int) -> int:
    """AUDIT_RETENTION_DAYS: delete audit rows older than `retention_days`, as the table's
    owner (no API role may delete audit rows); returns how many."""
    with connect(dsn) as conn:
        with conn, conn.cursor() as cur:
            cur.execute("select public.prune_audit_log(%s)", (retention_days,))
            return cur.fetchone()[0]


RECURRING_INTERVAL_SECONDS = 3600
RECURRING_LOCK = "ffb.materialize_recurring"


async def materialize_recurring_periodically(settings: Settings) -> None:
    """Recurring expenses (issue 23) where the database has no pg_cron: at start-up (the
    catch-up after downtime) and every hour, the one worker that takes the advisory lock
    runs materialize_recurring(); every other worker of every instance skips that round.
    The function is idempotent, so a round that overlaps pg_cron or another leader creates
    nothing twice either."""
    dsn = settings.database_url.get_secret_value()
    while True:
        try:
            created = await asyncio.to_thread(materialize_recurring_if_leader, dsn)
            if created:
                log.info("recurring expenses materialised", extra={"created": created})
        except Exception as exc:  # noqa: BLE001 - logged, retried at the next interval
            log.warning("materialising recurring expenses failed: %s", type(exc).__name__)
        await asyncio.sleep(RECURRING_INTERVAL_SECONDS)


def materialize_recurring_if_leader(dsn: str) -> int | None:
    """materialize_recurring() under a transaction-level advisory lock; None when pg_cron
    runs it or another worker holds the lock right now."""
    with connect(dsn) as conn:
        with conn, conn.cursor() as cur:
            cur.execute("select exists (select 1 from pg_extension where extname = 'pg_cron')")
            if cur.fetchone()[0]:
                return None
            cur.execute("select pg_try_advisory_xact_lock(hashtext(%s))", (RECURRING_LOCK,))
            if not cur.fetchone()[0]:
                return None
            cur.execute("select public.materialize_recurring()")
            return int(cur.fetchone()[0])
