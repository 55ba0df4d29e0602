"""GET /api/expenses/export.xlsx (issue 23): the CSV export's filters, columns and order as
an Excel workbook. Postgres hands the rows over 5,000 at a time (sql/R42_expense_export_rows.sql,
export_expenses_rows); xlsxwriter writes each row as it comes in `constant_memory` mode
(one row in memory, the sheet in a temporary file), and the finished file is streamed
from disk in 64 kB pieces, then deleted. Amounts are numbers, dates are dates, and every
text is written as a string: a cell reading `=1+1` is text, never a formula.

Declared before /api/expenses/{expense_id} (main.py includes this router first)."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import AsyncIterator
from typing import Annotated, Any

import xlsxwriter
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from deps import CurrentUser, Db
from edge import JsonRoute
from errors import error_responses
from routers.expenses import EXPORT_COLUMNS, EXPORT_PAGE_ROWS, ExpenseFilters

router = APIRouter(prefix="/api/expenses", tags=["expenses"], route_class=JsonRoute)

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
WIDTHS = (8, 11, 14, 16, 16, 14, 40, 34)
CHUNK = 64 * 1024


class SheetWriter:
    """One worksheet written row by row (constant_memory: rows strictly in order)."""

    def __init__(self, path: str) -> None:
        self.book = xlsxwriter.Workbook(
            path,
            {
                "constant_memory": True,
                "tmpdir": tempfile.gettempdir(),
                "strings_to_numbers": False,
                "strings_to_formulas": False,
                "strings_to_urls": False,
            },
        )
        self.sheet = self.book.add_worksheet("Expenses")
        self.date = self.book.add_format({"num_format": "yyyy-mm-dd"})
        self.amount = self.book.add_format({"num_format": "#,##0.00"})
        for column, (name, width) in enumerate(zip(EXPORT_COLUMNS, WIDTHS, strict=True)):
            self.sheet.set_column(column, column, width)
            self.sheet.write_string(0, column, name)
        self.row = 1
        self.closed = False

    def write(self, rows: list[list[Any]]) -> None:
        sheet = self.sheet
        for expense_id, date, user, category, method, amount, description, created in rows:
            r = self.row
            sheet.write_number(r, 0, expense_id)
            sheet.write_datetime(r, 1, dt.date.fromisoformat(date), self.date)
            sheet.write_string(r, 2, user)
            sheet.write_string(r, 3, category)
            if method is not None:
                sheet.write_string(r, 4, method)
            sheet.write_number(r, 5, amount, self.amount)
            if description is not None:
                sheet.write_string(r, 6, description)
            sheet.write_string(r, 7, created)
            self.row += 1

    def close(self) -> None:
        self.closed = True
        self.sheet.freeze_panes(1, 0)
        self.book.close()


@router.get(
    "/export.xlsx",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "An Excel workbook: the CSV export's columns and order; amounts "
            "as numbers, dates as dates, texts as strings (never formulas)",
            "content": {XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        },
        **error_responses(400, 401, 500, 503),
    },
    summary="Every matching expense as an Excel workbook (the CSV export's filters)",
)
async def export_xlsx(
    user: CurrentUser,
    db: Db,
    filters: Annotated[ExpenseFilters, Query()],
) -> StreamingResponse:
    page = filters.pager(db, user, "export_expenses_rows")

    # every page before the response starts: a workbook is only complete once closed, so
    # an error is still an ordinary JSON answer, and no client gets half a file
    current = await page(None, None)  # a refused token or filter: nothing made on disk
    handle, path = tempfile.mkstemp(prefix="expenses-", suffix=".xlsx")
    os.close(handle)
    writer = None
    try:
        writer = await run_in_threadpool(SheetWriter, path)
        while True:
            await run_in_threadpool(writer.write, current["rows"])
            if len(current["rows"]) < EXPORT_PAGE_ROWS:
                break
            current = await page(current["last_date"], current["last_id"])
        await run_in_threadpool(writer.close)
    except BaseException:
        if writer is not None and not writer.closed:
            writer.book.close()  # releases its temporary row file
        os.unlink(path)
        raise

    async def body() -> AsyncIterator[bytes]:
        try:
            with open(path, "rb") as file:
                while chunk := file.read(CHUNK):
                    yield chunk
        finally:
            os.unlink(path)

    return StreamingResponse(
        body(),
        media_type=XLSX_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{filters.filename("xlsx")}"',
            "Content-Length": str(os.path.getsize(path)),
            "Cache-Control": "no-store",
        },
    )
