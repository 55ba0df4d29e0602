"""Liveness, readiness and shadow-compare counts (additive; the legacy API had none)."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter

import database
import schema
import shadow
from auth import TOKEN_INVALID
from deps import CurrentUser, Db, Shadow
from models import ApiError, HealthStatus, JsonResponse, error_responses

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthStatus, summary="Liveness: the process answers")
async def health() -> JsonResponse:
    return JsonResponse({"status": "ok"})


async def _check(coro) -> str:
    try:
        await asyncio.wait_for(coro, timeout=3)
        return "ok"
    except Exception:  # noqa: BLE001 - any failure means not ready
        return "unreachable"


@router.get("/health/ready", response_model=HealthStatus,
            responses={503: {"model": HealthStatus, "description": "Postgres or PostgREST down"}},
            summary="Readiness: Postgres and PostgREST both reachable")
async def ready(db: Db) -> JsonResponse:
    dsn = db.settings.database_url.get_secret_value()
    postgres, postgrest = await asyncio.gather(
        _check(asyncio.to_thread(schema.check_postgres, dsn)),
        _check(database.execute(db.anon.table("categories").select("id").limit(1))))
    checks = {"postgres": postgres, "postgrest": postgrest}
    if postgres == postgrest == "ok":
        return JsonResponse({"status": "ready", "checks": checks})
    return JsonResponse({"error": database.DB_UNAVAILABLE, "status": "unavailable",
                         "checks": checks}, status_code=503)


@router.get("/health/shadow", response_model=shadow.ShadowReport,
            responses=error_responses(401, 500, 503),
            summary="Shadow compare against the legacy API: counts per endpoint (this worker)")
async def shadow_counts(user: CurrentUser, db: Db, compare: Shadow) -> JsonResponse:
    # No data call here carries the session to Postgres, so check it explicitly: a
    # logged-out token or a deleted user is refused like everywhere else.
    if not await database.execute(db.service.rpc(
            "session_is_valid", {"p_user_id": user.id, "p_jti": user.jti})):
        raise ApiError(401, TOKEN_INVALID)
    report = compare.report() if compare is not None else shadow.disabled_report()
    return JsonResponse(report.model_dump())
