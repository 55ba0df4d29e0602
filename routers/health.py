"""Liveness, readiness and shadow-compare counts (additive; the legacy API had none)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends

import database
import shadow
from deps import AppSettings, Db, Shadow
from errors import JsonResponse, error_responses
from models import HealthStatus
from routers.metrics import operator_access

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthStatus, summary="Liveness: the process answers")
async def health() -> JsonResponse:
    return JsonResponse({"status": "ok"})


NO_ADMIN = "none: run scripts/users.py set-role USER admin (docs/operations.md#first-admin)"


def check_postgres(dsn: str) -> bool:
    """Readiness: Postgres answers a query (in a thread: psycopg2 blocks). Also says whether
    any user is an admin (a deployment without one cannot use /api/admin)."""
    with database.connect(dsn, application_name="ffb-ready", timeout=2) as conn:
        with conn.cursor() as cur:
            cur.execute("select exists (select 1 from public.users where role = 'admin')")
            row = cur.fetchone()
            return bool(row and row[0])


async def _check(coro, answers: list | None = None) -> str:
    try:
        answer = await asyncio.wait_for(coro, timeout=3)
        if answers is not None:
            answers.append(answer)
        return "ok"
    except Exception:  # noqa: BLE001 - any failure means not ready
        return "unreachable"


@router.get(
    "/health/ready",
    response_model=HealthStatus,
    responses={503: {"model": HealthStatus, "description": "Postgres or PostgREST down"}},
    summary="Readiness: Postgres and PostgREST both reachable; `checks.admin` says whether "
    "any user is an admin",
)
async def ready(db: Db, settings: AppSettings) -> JsonResponse:
    dsn = settings.database_url.get_secret_value()
    has_admin: list[bool] = []
    postgres, postgrest = await asyncio.gather(
        _check(asyncio.to_thread(check_postgres, dsn), has_admin),
        _check(database.execute(db.anon.table("categories").select("id").limit(1))),
    )
    checks = {"postgres": postgres, "postgrest": postgrest}
    if has_admin:  # details, not a condition of readiness
        checks["admin"] = "ok" if has_admin[0] else NO_ADMIN
    if postgres == postgrest == "ok":
        return JsonResponse({"status": "ready", "checks": checks})
    return JsonResponse(
        {"error": database.DB_UNAVAILABLE, "status": "unavailable", "checks": checks},
        status_code=503,
    )


@router.get(
    "/health/shadow",
    response_model=shadow.ShadowReport,
    responses=error_responses(401, 403, 500),
    dependencies=[Depends(operator_access)],
    summary="Shadow compare against the legacy API: counts per endpoint (this worker). "
    "Operators only: `Authorization: Bearer <METRICS_TOKEN>`",
)
async def shadow_counts(compare: Shadow) -> JsonResponse:
    # The report names endpoints and differences from the legacy: for operators, not for
    # members (a self-registered outsider once read it with an ordinary login token).
    report = compare.report() if compare is not None else shadow.disabled_report()
    return JsonResponse(report.model_dump())
