"""PUT /api/budgets and GET /api/budgets (issue 23): family-wide budgets per category and
month. Postgres builds both bodies (sql/R55_budgets.sql: set_budget, budget_status); the
gateway validates the input and passes the bytes through.

Write endpoints here (PUT) take `user: CurrentUser`; a role check (issue 22: viewers read
only) belongs in that one dependency or at the top of set_budget()."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema
from starlette.responses import Response

from auth import audit_headers
from database import rpc_passthrough
from deps import CurrentUser, DashCache, Db
from edge import JsonRoute
from errors import error_responses
from models import BudgetAmount, Id, StrictInput, canonical_int
from routers.dashboard import cached_rpc

router = APIRouter(prefix="/api/budgets", tags=["budgets"], route_class=JsonRoute)

MONTH_RE = re.compile(r"(19[0-9]{2}|2[01][0-9]{2}|2200)-(0[1-9]|1[0-2])")


def _month(value: object) -> object:
    if not isinstance(value, str) or not MONTH_RE.fullmatch(value):
        raise ValueError("must be a month in YYYY-MM format (1900-01 to 2200-12)")
    return dt.date(int(value[:4]), int(value[5:]), 1)


class BudgetSet(BaseModel):
    model_config = StrictInput
    category_id: Id = Field(examples=[1])
    amount: BudgetAmount = Field(description="0 removes the budget from this month on")
    month: Annotated[
        dt.date,
        BeforeValidator(_month),
        WithJsonSchema(
            {"type": "string", "pattern": f"^{MONTH_RE.pattern}$", "examples": ["2025-05"]}
        ),
    ] = Field(description="YYYY-MM: the budget holds from this month on, until changed")


class BudgetSaved(BaseModel):
    message: str = Field(examples=["Budget saved"])
    category_id: int
    category: str
    month: str = Field(examples=["2025-05"])
    amount: float


class BudgetStatus(BaseModel):
    category_id: int
    category: str
    budget: float | None
    spent: float
    remaining: float | None
    percentage: float | None
    over: bool


@router.put(
    "",
    response_model=BudgetSaved,
    responses=error_responses(400, 401, 413, 500, 503),
    summary="Set a category's budget from a month on (0 removes it from then on)",
)
async def set_budget(body: BudgetSet, user: CurrentUser, db: Db, request: Request) -> Response:
    return await rpc_passthrough(
        db,
        "set_budget",
        {
            "p_actor_id": user.id,
            "p_category_id": body.category_id,
            "p_month": body.month.isoformat(),
            "p_amount": str(body.amount),
        },
        audit_headers(request, user),
        stream=False,
    )


@router.get(
    "",
    response_model=list[BudgetStatus],
    responses=error_responses(400, 401, 500, 503),
    summary="Budget, spent and remaining per category for one month",
)
async def budget_status(
    user: CurrentUser,
    db: Db,
    cache: DashCache,
    year: Annotated[
        canonical_int(1900, 2200) | None, Query(description="Defaults to this year")
    ] = None,
    month: Annotated[
        canonical_int(1, 12) | None, Query(description="1-12, defaults to this month")
    ] = None,
) -> Response:
    today = dt.date.today()
    # kept like a dashboard (DASHBOARD_CACHE): budgets, totals and categories all NOTIFY
    return await cached_rpc(
        db,
        user,
        cache,
        "budget_status",
        {"p_year": year or today.year, "p_month": month or today.month},
    )
