"""Cut-over: tokens the legacy functions issued (no jti) keep working and can log out."""

from __future__ import annotations

import time

from jose import jwt

from tests.helpers import bearer, stack_settings


def legacy_token(user_id: int = 2, name: str = "Amol", iat_offset: int = 0) -> str:
    """The legacy claims exactly: {userId, name, email} + iat/exp, HS256 with JWT_SECRET."""
    now = int(time.time()) - iat_offset
    claims = {
        "userId": user_id,
        "name": name,
        "email": f"{name.lower()}@example.com",
        "iat": now,
        "exp": now + 24 * 3600,
    }
    return jwt.encode(claims, stack_settings().jwt_secret.get_secret_value(), algorithm="HS256")


async def test_legacy_token_without_jti_reads_me_and_dashboards(api, fresh_db):
    token = legacy_token()
    me = await api.get("/api/auth/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.json() == {"id": 2, "name": "Amol", "email": "amol@example.com"}
    monthly = await api.get("/api/dashboard/2/monthly?year=2025&month=1", headers=bearer(token))
    assert monthly.status_code == 200 and monthly.json()["total_spent"] == 0


async def test_logout_revokes_a_legacy_token_and_only_that_one(api, fresh_db):
    first, second = legacy_token(iat_offset=10), legacy_token(iat_offset=20)
    assert (await api.post("/api/auth/logout", headers=bearer(first))).status_code == 200
    refused = await api.get("/api/auth/me", headers=bearer(first))
    assert refused.status_code == 401
    assert refused.json() == {"error": "Invalid or expired token"}
    assert (await api.get("/api/auth/me", headers=bearer(second))).status_code == 200


async def test_legacy_token_of_a_deleted_user_is_401(api, fresh_db):
    from tests.helpers import sql

    with sql(fresh_db) as cur:
        cur.execute("delete from public.users where id = 4")
    response = await api.get("/api/expenses", headers=bearer(legacy_token(4, "Rashmi")))
    assert response.status_code == 401


async def test_a_legacy_member_token_never_opens_the_shadow_report(api, fresh_db):
    """/health/shadow is for operators (METRICS_TOKEN), not for members' login tokens."""
    token = legacy_token(iat_offset=30)
    assert (await api.get("/api/auth/me", headers=bearer(token))).status_code == 200
    response = await api.get("/health/shadow", headers=bearer(token))
    assert response.status_code == 403
    assert response.json() == {"error": "Set METRICS_TOKEN to read this endpoint"}
