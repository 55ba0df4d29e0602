"""GET /api/expenses (filters, paging past PostgREST's max-rows) and POST /api/expenses."""
from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query

from auth import session_headers
from database import execute
from deps import CurrentUser, Db
from models import (
    ApiError,
    Expense,
    ExpenseCreate,
    ExpenseCreated,
    Id,
    IsoDate,
    JsonResponse,
    canonical_int,
    error_responses,
)

router = APIRouter(prefix="/api/expenses", tags=["expenses"])

# One round trip: PostgREST embeds the names of user, category and payment method.
SELECT = ("id,user_id,amount,category_id,payment_method_id,description,date,created_at,"
          "users(name),categories(name),payment_methods(name)")
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")


def number(value: Any) -> int | float:
    """Legacy amounts are JS numbers: 400.00 -> 400, 120.50 -> 120.5."""
    value = float(value)
    return int(value) if value.is_integer() else value


def shape(row: dict[str, Any]) -> dict[str, Any]:
    payment = row.get("payment_methods")
    return {
        "id": row["id"], "user_id": row["user_id"], "user_name": row["users"]["name"],
        "amount": number(row["amount"]), "category_id": row["category_id"],
        "category": row["categories"]["name"], "payment_method_id": row["payment_method_id"],
        "payment_method": payment["name"] if payment else None,
        "description": row["description"], "date": row["date"], "created_at": row["created_at"],
    }


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
) -> JsonResponse:
    if date_from and date_to and date_from > date_to:
        raise ApiError(400, "date_from must not be after date_to")

    def query(start: int, count: int):
        q = db.service.table("expenses").select(SELECT)
        if user_id is not None:
            q = q.eq("user_id", user_id)
        if category_id is not None:
            q = q.eq("category_id", category_id)
        if date_from is not None:
            q = q.gte("date", date_from.isoformat())
        if date_to is not None:
            q = q.lte("date", date_to.isoformat())
        return q.order("date", desc=True).order("id", desc=True).range(start, start + count - 1)

    page = db.settings.postgrest_page_size
    rows: list[dict[str, Any]] = []
    while True:
        want = page if limit is None else min(page, limit - len(rows))
        batch = await execute(query(offset + len(rows), want), session_headers(user))
        rows.extend(batch)
        if len(batch) < want or (limit is not None and len(rows) >= limit):
            break
    return JsonResponse([shape(r) for r in rows])


def request_hash(actor_id: int, body: ExpenseCreate) -> str:
    canonical = orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(str(actor_id).encode() + b"\0" + canonical).hexdigest()


@router.post("", status_code=201, response_model=ExpenseCreated,
             responses=error_responses(400, 401, 409, 413, 500, 503),
             summary="Add an expense; retries with the same Idempotency-Key store nothing new")
async def create_expense(
    body: ExpenseCreate, user: CurrentUser, db: Db,
    idempotency_key: Annotated[str | None, Header(
        description="Any client-chosen key (1-255 printable ASCII); a retry with the same "
                    "key and body returns the first response")] = None,
) -> JsonResponse:
    if idempotency_key is not None and not IDEMPOTENCY_KEY_RE.match(idempotency_key):
        raise ApiError(400, "Idempotency-Key must be 1-255 printable ASCII characters")
    result = await execute(db.service.rpc("create_expense", {
        "p_actor_id": user.id, "p_user_id": body.user_id or user.id,
        "p_category_id": body.category_id, "p_payment_method_id": body.payment_method_id,
        "p_amount": str(body.amount), "p_description": body.description,
        "p_date": body.date.isoformat() if body.date else None,
        "p_idempotency_key": idempotency_key,
        "p_request_hash": request_hash(user.id, body) if idempotency_key else None,
        "p_ttl_hours": db.settings.idempotency_ttl_hours,
    }), session_headers(user))
    expense = result["expense"]
    return JsonResponse({"message": "Expense added successfully", "id": expense["id"],
                         "expense": expense}, status_code=201)
