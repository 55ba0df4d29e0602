"""GET /api/categories and GET /api/payment-methods: public reference data (anon key).

Both change rarely, so each worker keeps the rendered body for REFERENCE_CACHE_TTL_SECONDS
(default 30 s) and answers `If-None-Match` with 304.
"""
from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field

from fastapi import APIRouter, Request, Response

import database
import metrics
from models import Category, JsonResponse, PaymentMethod, error_responses

router = APIRouter(prefix="/api", tags=["reference data"])


@dataclass
class CachedBody:
    body: bytes
    etag: str
    expires: float


@dataclass
class ReferenceCache:
    """Rendered responses per table, refreshed by one request at a time."""
    entries: dict[str, CachedBody] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def get(self, db: database.Database, table: str, columns: str) -> CachedBody:
        entry = self.entries.get(table)
        if entry and entry.expires > time.monotonic():
            metrics.REFERENCE_CACHE.labels(table, "hit").inc()
            return entry
        async with self.locks.setdefault(table, asyncio.Lock()):
            entry = self.entries.get(table)
            if entry and entry.expires > time.monotonic():
                metrics.REFERENCE_CACHE.labels(table, "hit").inc()
                return entry
            metrics.REFERENCE_CACHE.labels(table, "miss").inc()
            rows = await database.execute(db.anon.table(table).select(columns).order("id"))
            body = database.json_bytes(rows)
            entry = CachedBody(body, f'"{hashlib.sha1(body).hexdigest()}"',
                               time.monotonic() + db.settings.reference_cache_ttl_seconds)
            self.entries[table] = entry
            return entry

    def invalidate(self, table: str | None = None) -> None:
        if table is None:
            self.entries.clear()
        else:
            self.entries.pop(table, None)


def reference_cache(db: database.Database) -> ReferenceCache:
    return db.extras.setdefault("reference_cache", ReferenceCache())


async def _serve(request: Request, table: str, columns: str) -> Response:
    db: database.Database = request.app.state.db
    entry = await reference_cache(db).get(db, table, columns)
    headers = {"ETag": entry.etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == entry.etag:
        return Response(status_code=304, headers=headers)
    return JsonResponse(entry.body, headers=headers)


@router.get("/categories", response_model=list[Category], responses=error_responses(500, 503),
            summary="All categories, by id")
async def list_categories(request: Request) -> Response:
    return await _serve(request, "categories", "id,name,description")


@router.get("/payment-methods", response_model=list[PaymentMethod],
            responses=error_responses(500, 503), summary="All payment methods, by id")
async def list_payment_methods(request: Request) -> Response:
    return await _serve(request, "payment_methods", "id,name")
