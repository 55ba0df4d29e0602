"""GET /api/expenses and POST /api/expenses: Postgres builds each response body
(sql/R40_expenses.sql: list_expenses, create_expense_response), the gateway validates
the input and passes the bytes through. Also (issue 12) GET/PUT/DELETE
/api/expenses/{id} and GET /api/expenses/export.csv."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Header, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.responses import Response

from auth import TokenUser, audit_headers, session_headers
from database import Database, execute, rpc_passthrough
from deps import AppSettings, CurrentUser, Db
from edge import JsonRoute
from errors import ApiError, JsonResponse, error_responses
from models import (
    Expense,
    ExpenseChanges,
    ExpenseCreate,
    ExpenseCreated,
    ExpenseDeleted,
    ExpenseUpdated,
    Id,
    IsoDate,
    QueryAmount,
    SearchText,
    canonical_int,
)

router = APIRouter(prefix="/api/expenses", tags=["expenses"], route_class=JsonRoute)


class ExpenseFilters(BaseModel):
    """The filters of GET /api/expenses and both exports, one query model (FastAPI
    validates it on the routes it serves, hotpath.py on the hot list). Fields are checked
    in this order, and the first error is the answer; the range rules once every field is
    valid."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    # issue 23's filters, first: they were the first parameters checked before the model
    q: SearchText | None = Field(
        None,
        description="Case- and accent-insensitive substring of the description, the "
        "category or the payment method (1-200 characters)",
        examples=["pharmacy"],
    )
    min_amount: QueryAmount | None = Field(None, description="Inclusive")
    max_amount: QueryAmount | None = Field(None, description="Inclusive")
    payment_method_id: Id | None = None
    user_id: Id | None = None
    category_id: Id | None = None
    date_from: IsoDate | None = Field(None, description="YYYY-MM-DD, inclusive")
    date_to: IsoDate | None = Field(None, description="YYYY-MM-DD, inclusive")

    @model_validator(mode="after")
    def _ranges(self) -> ExpenseFilters:
        if (
            self.min_amount is not None
            and self.max_amount is not None
            and self.min_amount > self.max_amount
        ):
            raise ValueError("min_amount must not be more than max_amount")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError("date_from must not be after date_to")
        return self

    def search_params(self) -> dict[str, Any]:
        """Only the search filters given: a request without them calls the SQL functions
        exactly as before issue 23 (their new arguments default to null)."""
        given = {
            "p_payment_method_id": self.payment_method_id,
            "p_min_amount": None if self.min_amount is None else str(self.min_amount),
            "p_max_amount": None if self.max_amount is None else str(self.max_amount),
            "p_q": self.q,
        }
        return {k: v for k, v in given.items() if v is not None}

    def filter_params(self) -> dict[str, Any]:
        """The filters as arguments of the SQL functions (list_expenses and the exports)."""
        return {
            "p_user_id": self.user_id,
            "p_category_id": self.category_id,
            "p_date_from": self.date_from.isoformat() if self.date_from else None,
            "p_date_to": self.date_to.isoformat() if self.date_to else None,
        } | self.search_params()

    def filename(self, extension: str = "csv") -> str:
        parts = ["expenses"]
        for name, value in (
            ("user", self.user_id),
            ("category", self.category_id),
            ("from", self.date_from),
            ("to", self.date_to),
            ("payment-method", self.payment_method_id),
            ("min", self.min_amount),
            ("max", self.max_amount),
        ):
            if value is not None:
                parts.append(f"{name}-{value}")
        if self.q is not None:
            parts.append("search")  # the text itself could be anything: not in a file name
        return "_".join(parts) + "." + extension

    def pager(
        self, db: Database, user: TokenUser, function: str
    ) -> Callable[[str | None, int | None], Awaitable[dict[str, Any]]]:
        """One export page after (date, id), keyset order: `function` is
        export_expenses_csv (CSV text) or export_expenses_rows (values)."""

        async def page(after_date: str | None, after_id: int | None) -> dict[str, Any]:
            return await execute(
                db.service.rpc(
                    function,
                    self.filter_params()
                    | {
                        "p_after_date": after_date,
                        "p_after_id": after_id,
                        "p_limit": EXPORT_PAGE_ROWS,
                    },
                ),
                session_headers(user),
            )

        return page


class ListQuery(ExpenseFilters):
    """GET /api/expenses: the filters, then paging (no `limit`: every matching row)."""

    limit: Annotated[canonical_int(1, 100_000) | None, Field()] = None
    offset: Annotated[canonical_int(0, 10_000_000), Field()] = 0

    def list_params(self) -> dict[str, Any]:
        """Arguments of sql list_expenses(): the whole body is built by that one function
        (one query, no paging, no max-rows cap) and passed through unparsed."""
        return self.filter_params() | {"p_limit": self.limit, "p_offset": self.offset}


IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")


@router.get(
    "",
    response_model=list[Expense],
    responses=error_responses(400, 401, 500, 503),
    summary="Expenses, newest date first; without `limit` every matching row",
)
async def list_expenses(
    user: CurrentUser, db: Db, query: Annotated[ListQuery, Query()]
) -> Response:
    # also served by hotpath.py, which calls this function with the same three arguments
    return await rpc_passthrough(db, "list_expenses", query.list_params(), session_headers(user))


def request_hash(actor_id: int, body: ExpenseCreate) -> str:
    canonical = orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(str(actor_id).encode() + b"\0" + canonical).hexdigest()


@router.post(
    "",
    status_code=201,
    response_model=ExpenseCreated,
    responses=error_responses(400, 401, 403, 409, 413, 500, 503),
    summary="Add an expense; retries with the same Idempotency-Key store nothing new",
)
async def create_expense(
    body: ExpenseCreate,
    user: CurrentUser,
    db: Db,
    settings: AppSettings,
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            description="Any client-chosen key (1-255 printable ASCII); a retry with the same "
            "key and body returns the first response"
        ),
    ] = None,
) -> Response:
    if idempotency_key is not None and not IDEMPOTENCY_KEY_RE.match(idempotency_key):
        raise ApiError(400, "Idempotency-Key must be 1-255 printable ASCII characters")
    response = await rpc_passthrough(
        db,
        "create_expense_response",
        {
            "p_actor_id": user.id,
            "p_user_id": body.user_id or user.id,
            "p_category_id": body.category_id,
            "p_payment_method_id": body.payment_method_id,
            "p_amount": str(body.amount),
            "p_description": body.description,
            "p_date": body.date.isoformat() if body.date else None,
            "p_idempotency_key": idempotency_key,
            "p_request_hash": request_hash(user.id, body) if idempotency_key else None,
            "p_ttl_hours": settings.idempotency_ttl_hours,
        },
        audit_headers(request, user),
        status_code=201,
        stream=False,
    )
    return response


# --------------------------------------------------------------------------------------
# Export (declared before /{expense_id}, which would otherwise capture "export.csv")
# --------------------------------------------------------------------------------------
# the exports' columns, in order: the CSV header, the workbook's, what an import may name
EXPORT_COLUMNS = (
    "id",
    "date",
    "user",
    "category",
    "payment_method",
    "amount",
    "description",
    "created_at",
)
CSV_HEADER = (",".join(EXPORT_COLUMNS) + "\r\n").encode()
EXPORT_PAGE_ROWS = 5000  # rows per round trip: the most the gateway holds at once


CSV_EXAMPLE = (
    "id,date,user,category,payment_method,amount,description,created_at\r\n"
    '42,2025-01-15,Alok,Food,UPI,250.5,"Groceries, fruit",'
    "2025-01-15T10:02:03.123456+00:00\r\n"
    "41,2025-01-14,Amol,Utilities,,1200,'=1+1,2025-01-14T08:00:00+00:00\r\n"
)


@router.get(
    "/export.csv",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "RFC 4180 CSV, CRLF line ends, UTF-8; cells that "
            "a spreadsheet would run as a formula start with `'`",
            "content": {"text/csv": {"example": CSV_EXAMPLE}},
        },
        **error_responses(400, 401, 500, 503),
    },
    summary="Every matching expense as CSV (the list's filters and order), streamed",
)
async def export_expenses(
    user: CurrentUser,
    db: Db,
    filters: Annotated[ExpenseFilters, Query()],
) -> StreamingResponse:
    page = filters.pager(db, user, "export_expenses_csv")

    # The first page before the response starts: a revoked token or an unreachable
    # database is still an ordinary JSON error. A failure later cuts the download short
    # (the chunked body never ends), which a client cannot take for a complete file.
    first = await page(None, None)

    async def rows() -> AsyncIterator[bytes]:
        yield CSV_HEADER
        current = first
        while True:
            if current["csv"]:
                yield current["csv"].encode()
            if current["rows"] < EXPORT_PAGE_ROWS:
                return
            current = await page(current["last_date"], current["last_id"])

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filters.filename()}"',
            "Cache-Control": "no-store",
        },
    )


# --------------------------------------------------------------------------------------
# One expense: read, change, delete (owner or recorder only; ETag / If-Match)
# --------------------------------------------------------------------------------------
ExpenseId = Annotated[Id, Path(description="The expense's id")]
IfMatch = Annotated[
    str | None,
    Header(
        description="The ETag of GET/PUT; when none of the tags is current the answer is 412 and "
        "nothing changes. Without it the last write wins. Several If-Match lines are one list.",
        examples=['"42-3"'],
    ),
]
NOTHING_TO_UPDATE = (
    "Nothing to update: send at least one of amount, category_id, "
    "payment_method_id, description, date, user_id"
)
MAX_IF_MATCH_TAGS = 32


def if_match_value(request: Request) -> str | None:
    """Every If-Match line, combined as RFC 9110 (5.3) says a list header is: two lines
    `"a"` and `"b"` mean `"a", "b"`, never only the first (the `if_match` parameter of the
    routes only documents the header)."""
    lines = request.headers.getlist("if-match")
    return ", ".join(lines) if lines else None


def if_match_tags(value: str | None) -> list[str] | None:
    """If-Match as the list of opaque tags to compare strongly (None: no condition)."""
    if value is None or value.strip() == "*":
        return None
    tags = [tag.strip() for tag in value.split(",") if tag.strip()]
    if not tags or len(tags) > MAX_IF_MATCH_TAGS:
        raise ApiError(400, f'If-Match must be "*" or 1-{MAX_IF_MATCH_TAGS} entity tags')
    # W/"..." stays as it is: a weak tag never matches in a strong comparison (RFC 9110)
    return [tag[1:-1] if len(tag) >= 2 and tag[0] == tag[-1] == '"' else tag for tag in tags]


def with_etag(body: dict[str, Any], etag: str) -> JsonResponse:
    return JsonResponse(body, headers={"ETag": f'"{etag}"'})


ETAG_HEADER = {
    "ETag": {
        "description": "Strong, opaque entity tag (do not parse it); send it back in If-Match",
        "schema": {"type": "string"},
    }
}


@router.get(
    "/{expense_id}",
    response_model=Expense,
    responses={200: {"headers": ETAG_HEADER}, **error_responses(400, 401, 404, 500, 503)},
    summary="One expense in the list's shape, with its ETag",
)
async def get_expense(expense_id: ExpenseId, user: CurrentUser, db: Db) -> JsonResponse:
    result = await execute(
        db.service.rpc("get_expense", {"p_id": expense_id}), session_headers(user)
    )
    return with_etag(result["expense"], result["etag"])


@router.put(
    "/{expense_id}",
    response_model=ExpenseUpdated,
    responses={
        200: {"headers": ETAG_HEADER},
        **error_responses(400, 401, 403, 404, 412, 413, 500, 503),
    },
    summary="Change some fields of an expense (its member or whoever recorded it)",
)
async def update_expense(
    expense_id: ExpenseId,
    user: CurrentUser,
    db: Db,
    request: Request,
    body: Annotated[ExpenseChanges | None, Body()] = None,
    if_match: IfMatch = None,
) -> JsonResponse:
    changes = body.changes() if body is not None else {}
    if not changes:
        raise ApiError(400, NOTHING_TO_UPDATE)
    result = await execute(
        db.service.rpc(
            "update_expense",
            {
                "p_id": expense_id,
                "p_changes": changes,
                "p_if_match": if_match_tags(if_match_value(request)),
            },
        ),
        audit_headers(request, user),
    )
    return with_etag(
        {"message": "Expense updated successfully", "expense": result["expense"]}, result["etag"]
    )


@router.delete(
    "/{expense_id}",
    response_model=ExpenseDeleted,
    responses=error_responses(400, 401, 403, 404, 412, 500, 503),
    summary="Delete an expense (its member or whoever recorded it)",
)
async def delete_expense(
    expense_id: ExpenseId, user: CurrentUser, db: Db, request: Request, if_match: IfMatch = None
) -> JsonResponse:
    result = await execute(
        db.service.rpc(
            "delete_expense",
            {"p_id": expense_id, "p_if_match": if_match_tags(if_match_value(request))},
        ),
        audit_headers(request, user),
    )
    return JsonResponse({"message": "Expense deleted successfully", "id": result["id"]})
