"""The rendered bodies of GET /api/categories and /api/payment-methods, per worker.

Reference data changes rarely, so each worker keeps the JSON body (and its ETag) for
REFERENCE_CACHE_TTL_SECONDS; one request at a time refreshes an expired entry.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field

import database
import metrics


@dataclass
class CachedBody:
    body: bytes
    etag: str
    expires: float


@dataclass
class ReferenceCache:
    """Rendered responses per table, refreshed by one request at a time."""

    ttl_seconds: float
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
            entry = CachedBody(
                body, f'"{hashlib.sha1(body).hexdigest()}"', time.monotonic() + self.ttl_seconds
            )
            self.entries[table] = entry
            return entry

    def invalidate(self, table: str | None = None) -> None:
        """Forget one table's body (a write to it), or every body (`None`)."""
        if table is None:
            self.entries.clear()
        else:
            self.entries.pop(table, None)
