"""GET /api/dashboard/users, /{user_id}/monthly and /{user_id}/yearly.

The aggregation is Postgres' (sql/R50_dashboards.sql): each dashboard is one RPC that
returns the complete response JSON; Python only validates the input.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from auth import session_headers
from database import JSON_MEDIA_TYPE, execute, rpc_passthrough
from deps import CurrentUser, DashCache, Db
from edge import JsonRoute
from errors import ApiError, JsonResponse, error_responses
from models import (
    MAX_YEAR,
    MIN_YEAR,
    Id,
    MonthlyDashboard,
    PublicUser,
    YearlyDashboard,
    canonical_int,
)

router = APIRouter(prefix="/api/dashboard", tags=["dashboard"], route_class=JsonRoute)
SESSION_CHECK = "gateway_session_check"  # sql/R31_auth_sessions.sql

UserId = Annotated[Id, Path(description="The user whose spending is summarised")]
Year = Annotated[
    canonical_int(MIN_YEAR, MAX_YEAR) | None, Field(description="Defaults to this year")
]


class YearQuery(BaseModel):
    """The query of a yearly dashboard (a model: one validation; hotpath.py uses it too)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    year: Year = None

    def year_or_now(self) -> int:
        return self.year or dt.date.today().year


class MonthQuery(YearQuery):
    """The query of a monthly dashboard."""

    month: Annotated[
        canonical_int(1, 12) | None, Field(description="1-12, defaults to this month")
    ] = None

    def month_or_now(self) -> int:
        return self.month or dt.date.today().month


@router.get(
    "/users",
    response_model=list[PublicUser],
    responses=error_responses(401, 500, 503),
    summary="Every family member, by id",
)
async def list_users(user: CurrentUser, db: Db) -> JsonResponse:
    # dashboard_users checks the session itself (sql/R50_dashboards.sql), hook or no hook
    rows = await execute(db.service.rpc("dashboard_users", {}), session_headers(user))
    return JsonResponse(rows)


async def cached_rpc(
    db: Db, user: CurrentUser, cache: DashCache, function: str, params: dict
) -> Response:
    """A read whose whole body Postgres builds (dashboards, budgets): its bytes passed on
    unparsed, and kept by the worker's cache when DASHBOARD_CACHE is on (dashboard_cache.py;
    every table the body reads sends the cache's NOTIFY on a write)."""
    key, session = (function, *params.values()), (user.id, user.jti)
    cached = cache.get(key, session)
    if cached is not None:
        # A hit still asks Postgres whether the session holds, in a check that starts after
        # this request arrived (shared by the hits of this session waiting with it): the
        # NOTIFY of a logout reaches other workers and instances only milliseconds later.
        headers = session_headers(user)
        await cache.session_checks.confirm(
            headers["X-Gateway-Session"],
            lambda: execute(db.service.rpc(SESSION_CHECK, {}), headers),
        )
        return Response(cached, media_type=JSON_MEDIA_TYPE)
    generation = cache.generation
    response = await rpc_passthrough(db, function, params, session_headers(user), stream=False)
    if response.body == b"null":  # the dashboards answer null for an unknown user
        raise ApiError(404, "User not found")
    cache.put(key, session, bytes(response.body), generation)
    return response


@router.get(
    "/{user_id}/monthly",
    response_model=MonthlyDashboard,
    responses=error_responses(400, 401, 404, 500, 503),
    summary="One month: total, top 5 categories and the full breakdown",
)
async def monthly(
    user_id: UserId,
    user: CurrentUser,
    db: Db,
    cache: DashCache,
    query: Annotated[MonthQuery, Query()],
) -> Response:
    # also served by hotpath.py, which calls this function with the same arguments
    params = {"p_user_id": user_id, "p_year": query.year_or_now(), "p_month": query.month_or_now()}
    return await cached_rpc(db, user, cache, "get_monthly_dashboard", params)


@router.get(
    "/{user_id}/yearly",
    response_model=YearlyDashboard,
    responses=error_responses(400, 401, 404, 500, 503),
    summary="One year: total, categories and all 12 monthly totals",
)
async def yearly(
    user_id: UserId,
    user: CurrentUser,
    db: Db,
    cache: DashCache,
    query: Annotated[YearQuery, Query()],
) -> Response:
    # also served by hotpath.py, which calls this function with the same arguments
    params = {"p_user_id": user_id, "p_year": query.year_or_now()}
    return await cached_rpc(db, user, cache, "get_yearly_dashboard", params)
