"""POST/GET /api/recurring and PUT/DELETE /api/recurring/{id} (issue 23): rules that make an
ordinary expense on every date of a weekly, monthly or yearly schedule. Postgres builds the
bodies and creates the occurrences already due in the same transaction
(sql/R43_recurring.sql); later ones come from materialize_recurring(), run daily by pg_cron
or by the gateway's leader (background.py).

A role check (issue 22: viewers may not write) belongs in the `CurrentUser` dependency or at
the top of create_recurring() / update_recurring() / delete_recurring()."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Path, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from auth import audit_headers, session_headers
from database import rpc_passthrough
from deps import CurrentUser, Db
from edge import JsonRoute
from errors import ApiError, error_responses
from models import Amount, Description, ExpenseDate, Id, StrictInput

router = APIRouter(prefix="/api/recurring", tags=["recurring"], route_class=JsonRoute)

Frequency = Literal["weekly", "monthly", "yearly"]


class RecurringCreate(BaseModel):
    model_config = StrictInput
    amount: Amount
    category_id: Id = Field(examples=[3])
    payment_method_id: Id | None = Field(None, examples=[4])
    description: Description | None = Field(None, examples=["Rent"])
    user_id: Id | None = Field(None, description="Defaults to the caller")
    frequency: Frequency = Field(examples=["monthly"])
    start_date: ExpenseDate = Field(examples=["2025-01-31"])
    end_date: ExpenseDate | None = Field(None, examples=[None])


class RecurringChanges(BaseModel):
    """Any non-empty subset of POST's fields; they apply from the next occurrence on."""

    model_config = StrictInput
    amount: Amount = None  # type: ignore[assignment]
    category_id: Id = Field(None)
    payment_method_id: Id | None = Field(None)
    description: Description | None = Field(None)
    user_id: Id = Field(None)
    frequency: Frequency = Field(None)  # type: ignore[arg-type]
    start_date: ExpenseDate = Field(None)  # type: ignore[assignment]
    end_date: ExpenseDate | None = Field(None)


class Recurring(BaseModel):
    id: int
    user_id: int
    amount: float
    category_id: int
    payment_method_id: int | None
    description: str | None
    frequency: Frequency
    start_date: dt.date
    end_date: dt.date | None
    next_date: dt.date | None


class RecurringCreated(BaseModel):
    message: str = Field(examples=["Recurring expense created"])
    id: int
    next_date: dt.date | None
    recurring: Recurring


class RecurringUpdated(BaseModel):
    message: str = Field(examples=["Recurring expense updated"])
    recurring: Recurring


class RecurringDeleted(BaseModel):
    message: str = Field(examples=["Recurring expense deleted"])
    id: int


RuleId = Annotated[Id, Path(description="The recurring expense's id")]
# How long Postgres may work on a create or change before the gateway answers: a rule that
# starts long ago makes every due occurrence in the same transaction (thousands of rows
# for a weekly rule from 1900), and an answer of 503 while that work then commits would
# invite a retry that makes them all again (found by the re-probe of issue 24).
MATERIALIZE_SECONDS = 300.0


@router.post(
    "",
    status_code=201,
    response_model=RecurringCreated,
    responses=error_responses(400, 401, 413, 500, 503),
    summary="Add a recurring expense; the occurrences already due are created at once",
)
async def create_recurring(
    body: RecurringCreate, user: CurrentUser, db: Db, request: Request
) -> Response:
    return await rpc_passthrough(
        db,
        "create_recurring",
        {"p_actor_id": user.id, "p_rule": body.model_dump(mode="json")},
        audit_headers(request, user),
        status_code=201,
        stream=False,
        read_seconds=MATERIALIZE_SECONDS,
    )


@router.get(
    "",
    response_model=list[Recurring],
    responses=error_responses(401, 500, 503),
    summary="Every recurring expense, by id, with its next date",
)
async def list_recurring(user: CurrentUser, db: Db) -> Response:
    return await rpc_passthrough(db, "list_recurring", {}, session_headers(user))


@router.put(
    "/{rule_id}",
    response_model=RecurringUpdated,
    responses=error_responses(400, 401, 403, 404, 413, 500, 503),
    summary="Change a recurring expense from its next occurrence on (its member or creator)",
)
async def update_recurring(
    rule_id: RuleId,
    user: CurrentUser,
    db: Db,
    request: Request,
    body: Annotated[RecurringChanges | None, Body()] = None,
) -> Response:
    changes = body.model_dump(mode="json", exclude_unset=True) if body is not None else {}
    if not changes:
        raise ApiError(400, "Nothing to update: send at least one field of POST /api/recurring")
    return await rpc_passthrough(
        db,
        "update_recurring",
        {"p_id": rule_id, "p_actor_id": user.id, "p_changes": changes},
        audit_headers(request, user),
        stream=False,
        read_seconds=MATERIALIZE_SECONDS,
    )


@router.delete(
    "/{rule_id}",
    response_model=RecurringDeleted,
    responses=error_responses(400, 401, 403, 404, 500, 503),
    summary="Delete a recurring expense; the expenses it made stay",
)
async def delete_recurring(
    rule_id: RuleId, user: CurrentUser, db: Db, request: Request
) -> Response:
    return await rpc_passthrough(
        db,
        "delete_recurring",
        {"p_id": rule_id, "p_actor_id": user.id},
        audit_headers(request, user),
        stream=False,
    )
