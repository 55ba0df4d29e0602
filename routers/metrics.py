"""GET /metrics: Prometheus text format, summed over every gunicorn worker (metrics.py)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

import metrics

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(metrics.metrics_access)])
async def prometheus_metrics(request: Request) -> Response:
    body, content_type = metrics.render(request.app.state.settings)
    return Response(body, media_type=content_type)
