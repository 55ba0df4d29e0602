"""Liveness, readiness and shadow-compare counts (additive; the legacy API had none)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

import shadow
from auth import session_headers
from database import execute, postgrest_version
from deps import AppState, CurrentUser, Db, Shadow, app_state
from edge import JsonRoute
from errors import JsonResponse, error_responses
from models import HealthStatus, Versions
from routers.metrics import operator_access

router = APIRouter(tags=["health"], route_class=JsonRoute)


async def get_state(request: Request) -> AppState:
    return app_state(request.app)


State = Annotated[AppState, Depends(get_state)]


@router.get("/health", response_model=HealthStatus, summary="Liveness: the process answers")
async def health() -> JsonResponse:
    return JsonResponse({"status": "ok"})


@router.get(
    "/health/ready",
    response_model=HealthStatus,
    responses={
        503: {
            "model": HealthStatus,
            "description": "Postgres or PostgREST down, or session revocation not enforced",
        }
    },
    summary="Readiness: Postgres and PostgREST reachable, and a refused session refused "
    "(cached for 1 s per worker); `checks.admin` says whether any user is an admin",
)
async def ready(state: State) -> JsonResponse:
    status, body = await state.readiness.answer()
    return JsonResponse(body, status_code=status)


@router.get(
    "/health/versions",
    response_model=Versions,
    responses=error_responses(401, 500, 503),
    summary="The PostgreSQL and PostgREST versions behind the API (any logged-in member; "
    "scripts/smoke.py prints them)",
)
async def versions(user: CurrentUser, db: Db) -> JsonResponse:
    found = await execute(db.service.rpc("server_versions", {}), session_headers(user))
    return JsonResponse({"postgres": found["postgres"], "postgrest": await postgrest_version(db)})


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
