"""GET /api/categories and GET /api/payment-methods: public reference data (anon key).

Both change rarely, so each worker keeps the rendered body for REFERENCE_CACHE_TTL_SECONDS
(default 30 s, reference_cache.py) and answers `If-None-Match` with 304.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from deps import Db, RefCache
from edge import JsonRoute
from errors import JsonResponse, error_responses
from models import Category, PaymentMethod

router = APIRouter(prefix="/api", tags=["reference data"], route_class=JsonRoute)


async def _serve(request: Request, db: Db, cache: RefCache, table: str, columns: str) -> Response:
    entry = await cache.get(db, table, columns)
    headers = {"ETag": entry.etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == entry.etag:
        return Response(status_code=304, headers=headers)
    return JsonResponse(entry.body, headers=headers)


@router.get(
    "/categories",
    response_model=list[Category],
    responses=error_responses(500, 503),
    summary="All categories, by id",
)
async def list_categories(request: Request, db: Db, cache: RefCache) -> Response:
    return await _serve(request, db, cache, "categories", "id,name,description")


@router.get(
    "/payment-methods",
    response_model=list[PaymentMethod],
    responses=error_responses(500, 503),
    summary="All payment methods, by id",
)
async def list_payment_methods(request: Request, db: Db, cache: RefCache) -> Response:
    return await _serve(request, db, cache, "payment_methods", "id,name")
