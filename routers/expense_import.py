"""POST /api/expenses/import (issue 23): expenses from a CSV in the export's columns.

The body is read as it streams in and split into records here (RFC 4180 framing, line
numbers), keeping only the JSON array that goes to Postgres: the file is held once, in that
form, never twice. Postgres (sql/R41_expense_import.sql, import_expenses) parses the values,
resolves names, lists every bad line and inserts - all or nothing, set-based, in one
transaction.

A role check (issue 22: viewers may not write) belongs in the `CurrentUser` dependency or at
the top of import_expenses()."""

from __future__ import annotations

import codecs
import csv
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from auth import audit_headers
from database import rpc_passthrough
from deps import CurrentUser, Db
from edge import JsonRoute
from errors import ApiError, JsonResponse, error_responses
from routers.expenses import EXPORT_COLUMNS

router = APIRouter(prefix="/api/expenses", tags=["expenses"], route_class=JsonRoute)

REQUIRED = ("date", "user", "category", "amount")
SENT = ("date", "user", "category", "payment_method", "amount", "description")
IMPORT_SECONDS = 300.0  # how long Postgres may work on one import before answering


class ImportLine(BaseModel):
    line: int = Field(description="The line of the file where the record starts (1: header)")
    error: str


class ImportRefused(BaseModel):
    error: str
    lines: list[ImportLine] = Field(
        default_factory=list,
        description="Every bad line, when the refusal is about lines; absent when the body as "
        "a whole is refused (no header line, unknown columns, wrong content type)",
    )


class ImportDone(BaseModel):
    message: str
    imported: int


class ImportDryRun(BaseModel):
    message: str
    would_import: int


def split_record(text: str) -> list[str] | None:
    """One record's fields (the text may hold quoted line breaks); None when malformed."""
    try:
        return next(csv.reader([text], strict=True))
    except (csv.Error, StopIteration):
        return None


async def records(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, str]]:
    """(first line number, record text) of every record, as the body streams in. A record
    ends at a line break outside quotes (an even number of `"` so far)."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    pending, record, line, start = "", "", 1, 1
    try:
        async for chunk in chunks:
            pending += decoder.decode(chunk)
            *complete, pending = pending.split("\n")
            for physical in complete:
                if not record:
                    start = line
                record += physical + "\n"
                line += 1
                if record.count('"') % 2 == 0:
                    yield start, record
                    record = ""
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise ApiError(400, "The body must be UTF-8 text") from None
    if pending:
        if not record:
            start = line
        record += pending
    if record:
        yield start, record


async def import_payload(
    chunks: AsyncIterator[bytes], actor_id: int, dry_run: bool, skip_duplicates: bool
) -> bytes:
    """The arguments of import_expenses() as JSON, built while the body arrives."""
    payload = bytearray(
        orjson.dumps(
            {"p_actor_id": actor_id, "p_dry_run": dry_run, "p_skip_duplicates": skip_duplicates}
        )[:-1]
        + b',"p_rows":['
    )
    columns: list[str] | None = None
    rows = 0
    async for line, text in records(chunks):
        if columns is None:
            columns = header(text)
            continue
        if not text.strip("\r\n"):
            continue  # an empty line
        fields = split_record(text) if "\x00" not in text else None
        error = None
        if "\x00" in text:
            error = "must not contain NUL characters"
        elif fields is None or text.count('"') % 2:
            error = "malformed CSV record (unterminated or misplaced quote)"
        elif len(fields) != len(columns):
            error = f"expected {len(columns)} fields, found {len(fields)}"
        values = dict(zip(columns, fields or [], strict=False)) if error is None else {}
        row: list[Any] = [line, *(values.get(name, "") for name in SENT), error]
        if rows:
            payload += b","
        payload += orjson.dumps(row)
        rows += 1
    if columns is None:
        raise ApiError(400, "The CSV must start with a header line")
    if rows == 0:
        raise ApiError(400, "The CSV holds no expenses")
    payload += b"]}"
    return bytes(payload)


def header(text: str) -> list[str]:
    fields = split_record(text.removeprefix("\ufeff"))
    names = [name.strip().lower() for name in fields or []]
    unknown = [name for name in names if name not in EXPORT_COLUMNS]
    if unknown or len(set(names)) != len(names):
        raise ApiError(
            400,
            "The header may name only the export's columns, each once: " + ",".join(EXPORT_COLUMNS),
        )
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise ApiError(400, "The header must name the columns " + ", ".join(missing))
    return names


CSV_EXAMPLE = (
    "id,date,user,category,payment_method,amount,description,created_at\r\n"
    '42,2025-01-15,Alok,Food,UPI,250.5,"Groceries, fruit",2025-01-15T10:02:03.123456+00:00\r\n'
    ",2025-01-14,Amol,Utilities,,1200,'=1+1,\r\n"
)


@router.post(
    "/import",
    status_code=201,
    response_model=ImportDone,
    responses={
        200: {"model": ImportDryRun, "description": "dry_run=true: what would be imported"},
        400: {
            "model": ImportRefused,
            "description": "Nothing imported: every bad line, or why the whole body was refused",
        },
        **error_responses(401, 413, 500, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}, "example": CSV_EXAMPLE}},
        }
    },
    summary="Import expenses from a CSV in the export's columns: all or nothing",
)
async def import_expenses(
    request: Request,
    user: CurrentUser,
    db: Db,
    dry_run: Annotated[bool, Query(description="Check and count only; nothing is written")] = False,
    skip_duplicates: Annotated[
        bool,
        Query(
            description="Skip rows equal to an existing expense (user, date, amount, category, "
            "payment method, description)"
        ),
    ] = False,
) -> JsonResponse:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "text/csv":
        raise ApiError(400, "Content-Type must be text/csv")
    payload = await import_payload(request.stream(), user.id, dry_run, skip_duplicates)
    response = await rpc_passthrough(
        db,
        "import_expenses",
        {},
        audit_headers(request, user),
        stream=False,
        content=payload,
        read_seconds=IMPORT_SECONDS,
    )
    del payload
    result = orjson.loads(bytes(response.body))
    if "error" in result:
        return JsonResponse(result, status_code=400)
    return JsonResponse(result, status_code=200 if dry_run else 201)
