"""dashboard_cache.SessionChecks: the cache hits' session checks, shared only by hits that
arrived before the check began (a logout committed before a hit arrived is always seen)."""

from __future__ import annotations

import asyncio

import pytest

from dashboard_cache import SessionChecks
from errors import ApiError


class FakePostgres:
    """gateway_session_check: each call reads `revoked` when it starts, answers when the
    test releases it."""

    def __init__(self) -> None:
        self.revoked = False
        self.started: list[asyncio.Event] = []
        self.release: list[asyncio.Event] = []

    async def check(self) -> None:
        revoked_at_start = self.revoked
        go = asyncio.Event()
        self.release.append(go)
        self.started.append(asyncio.Event())
        self.started[-1].set()
        await go.wait()
        if revoked_at_start:
            raise ApiError(401, "Invalid or expired token")


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_hits_waiting_together_share_one_check_and_later_ones_the_next():
    pg, checks = FakePostgres(), SessionChecks()
    first = asyncio.create_task(checks.confirm("1:a:0", pg.check))
    await settle()
    assert len(pg.started) == 1  # the first hit's check runs
    later = [asyncio.create_task(checks.confirm("1:a:0", pg.check)) for _ in range(10)]
    await settle()
    assert len(pg.started) == 1  # the ten wait for the next check, not this one
    pg.release[0].set()
    await first
    await settle()
    assert not any(t.done() for t in later) and len(pg.started) == 2
    pg.release[1].set()
    await asyncio.gather(*later)
    assert checks.checks == 2


async def test_a_logout_during_a_check_is_seen_by_every_hit_that_arrived_after_it():
    pg, checks = FakePostgres(), SessionChecks()
    before = asyncio.create_task(checks.confirm("1:a:0", pg.check))
    await settle()
    pg.revoked = True  # the logout commits while the first check runs
    after = asyncio.create_task(checks.confirm("1:a:0", pg.check))
    await settle()
    pg.release[0].set()
    await before  # its check began before the logout: it may be answered
    await settle()
    pg.release[1].set()
    with pytest.raises(ApiError) as refused:
        await after
    assert refused.value.status == 401


async def test_a_refusal_reaches_every_hit_that_shared_the_check():
    pg, checks = FakePostgres(), SessionChecks()
    pg.revoked = True
    hits = [asyncio.create_task(checks.confirm("1:a:0", pg.check)) for _ in range(3)]
    await settle()
    pg.release[0].set()
    results = await asyncio.gather(*hits, return_exceptions=True)
    assert [getattr(r, "status", r) for r in results] == [401, 401, 401]
    assert checks.checks == 1


async def test_sessions_never_share_a_check():
    pg, checks = FakePostgres(), SessionChecks()
    hits = [asyncio.create_task(checks.confirm(key, pg.check)) for key in ("1:a:0", "1:b:0")]
    await settle()
    assert len(pg.started) == 2
    for go in pg.release:
        go.set()
    await asyncio.gather(*hits)


async def test_a_hit_whose_client_went_away_does_not_cancel_the_others():
    pg, checks = FakePostgres(), SessionChecks()
    gone = asyncio.create_task(checks.confirm("1:a:0", pg.check))
    await settle()
    stays = asyncio.create_task(checks.confirm("1:a:0", pg.check))
    await settle()
    gone.cancel()
    pg.release[0].set()
    await settle()
    pg.release[1].set()
    await stays
    assert checks.checks == 2
