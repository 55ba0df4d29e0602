"""GET /metrics (Prometheus text format, summed over every gunicorn worker: metrics.py) and
the operator-token dependencies (METRICS_TOKEN) of the operator endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

import metrics
from deps import AppSettings
from edge import JsonRoute

router = APIRouter(tags=["operations"], route_class=JsonRoute)


async def metrics_access(request: Request, settings: AppSettings) -> None:
    """/metrics: open without METRICS_TOKEN, else the token is required."""
    metrics.check_operator(settings, request, required=False)


async def operator_access(request: Request, settings: AppSettings) -> None:
    """/health/shadow: only with METRICS_TOKEN configured and presented."""
    metrics.check_operator(settings, request, required=True)


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(metrics_access)])
async def prometheus_metrics(settings: AppSettings) -> Response:
    body, content_type = metrics.render(settings)
    return Response(body, media_type=content_type)
