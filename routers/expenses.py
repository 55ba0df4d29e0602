"""GET /api/expenses and POST /api/expenses: Postgres builds each response body
(sql/gateway_functions.sql: list_expenses, create_expense_response), the gateway validates
the input and passes the bytes through."""
from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query
from starlette.responses import Response

from auth import session_headers
from database import rpc_passthrough
from deps import CurrentUser, DashCache, Db
from models import (
    ApiError,
    Expense,
    ExpenseCreate,
    ExpenseCreated,
    Id,
    IsoDate,
    canonical_int,
    error_responses,
)

router = APIRouter(prefix="/api/expenses", tags=["expenses"])

IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")


@router.get("", response_model=list[Expense], responses=error_responses(400, 401, 500, 503),
            summary="Expenses, newest date first; without `limit` every matching row")
async def list_expenses(
    user: CurrentUser, db: Db,
    user_id: Annotated[Id | None, Query()] = None,
    category_id: Annotated[Id | None, Query()] = None,
    date_from: Annotated[IsoDate | None, Query(description="YYYY-MM-DD, inclusive")] = None,
    date_to: Annotated[IsoDate | None, Query(description="YYYY-MM-DD, inclusive")] = None,
    limit: Annotated[canonical_int(1, 100_000) | None, Query()] = None,
    offset: Annotated[canonical_int(0, 10_000_000), Query()] = 0,
) -> Response:
    if date_from and date_to and date_from > date_to:
        raise ApiError(400, "date_from must not be after date_to")
    return await rpc_passthrough(db, "list_expenses", list_params(
        user_id, category_id, date_from, date_to, limit, offset), session_headers(user))


def list_params(user_id: int | None, category_id: int | None, date_from: dt.date | None,
                date_to: dt.date | None, limit: int | None, offset: int) -> dict[str, Any]:
    """Arguments of sql list_expenses(): the whole body is built by that one function
    (one query, no paging, no max-rows cap) and passed through unparsed."""
    return {"p_user_id": user_id, "p_category_id": category_id,
            "p_date_from": date_from.isoformat() if date_from else None,
            "p_date_to": date_to.isoformat() if date_to else None,
            "p_limit": limit, "p_offset": offset}


def request_hash(actor_id: int, body: ExpenseCreate) -> str:
    canonical = orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(str(actor_id).encode() + b"\0" + canonical).hexdigest()


@router.post("", status_code=201, response_model=ExpenseCreated,
             responses=error_responses(400, 401, 409, 413, 500, 503),
             summary="Add an expense; retries with the same Idempotency-Key store nothing new")
async def create_expense(
    body: ExpenseCreate, user: CurrentUser, db: Db, cache: DashCache,
    idempotency_key: Annotated[str | None, Header(
        description="Any client-chosen key (1-255 printable ASCII); a retry with the same "
                    "key and body returns the first response")] = None,
) -> Response:
    if idempotency_key is not None and not IDEMPOTENCY_KEY_RE.match(idempotency_key):
        raise ApiError(400, "Idempotency-Key must be 1-255 printable ASCII characters")
    response = await rpc_passthrough(db, "create_expense_response", {
        "p_actor_id": user.id, "p_user_id": body.user_id or user.id,
        "p_category_id": body.category_id, "p_payment_method_id": body.payment_method_id,
        "p_amount": str(body.amount), "p_description": body.description,
        "p_date": body.date.isoformat() if body.date else None,
        "p_idempotency_key": idempotency_key,
        "p_request_hash": request_hash(user.id, body) if idempotency_key else None,
        "p_ttl_hours": db.settings.idempotency_ttl_hours,
    }, session_headers(user), status_code=201, stream=False)
    cache.invalidate()  # read-your-writes on this worker; the others through the NOTIFY
    return response
