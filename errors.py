"""The one error type and how errors are rendered: every error is `{"error": "..."}`.

Routes and helpers raise `ApiError(status, message)`; the handlers in edge.py turn it into a
`JsonResponse`. `error_responses` documents the same body in OpenAPI.
"""

from __future__ import annotations

import orjson
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse


class JsonResponse(JSONResponse):
    """JSON rendered by orjson (also accepts bytes that are already JSON)."""

    def render(self, content: object) -> bytes:
        if isinstance(content, bytes):
            return content
        return orjson.dumps(content)


class ApiError(Exception):
    """Raised anywhere; one handler turns it into `{"error": message}` with `status`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class ErrorBody(BaseModel):
    error: str = Field(description="Human-readable message; each operation documents its own")


def error_responses(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI `responses=` entries documenting the `{"error": ...}` body."""
    described = {
        400: "Invalid input",
        401: "Missing, invalid, expired or revoked token",
        403: "Forbidden",
        404: "Not found",
        409: "Conflict",
        413: "Request body too large",
        415: "Content-Type must be application/json",
        412: "Changed since the If-Match ETag was read; nothing changed",
        429: "Too many requests (see Retry-After)",
        500: "Internal error",
        503: "Database unavailable",
    }
    return {s: {"model": ErrorBody, "description": described[s]} for s in statuses}
