"""Golden responses of the account endpoints issue 22 adds (/api/auth/token, /refresh,
/session, /sessions, /password, /reset-password, /totp, /api/admin/*), on the fixed
contract dataset with Alok (1) as the admin and Amol (2) as a viewer.

Each case's status and body are compared EXACTLY with tests/contract/golden/accounts/
<case>.json (a directory of its own: the legacy goldens stay as they are) after the
volatile values are replaced: tokens, codes and secrets by "<token>", timestamps by
"<timestamp>", the ids of rows a case creates by "<created-id>". Regenerate after an
intended change, then review by hand:
    UPDATE_GOLDEN=1 ./scripts/dev test tests/contract/test_contract_accounts.py
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from tests.contract.test_contract import login
from tests.helpers import load_contract_dataset, sql

GOLDEN = Path(__file__).parent / "golden" / "accounts"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
STRONG = "N3w!passw0rd"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
PASSWORD = "password123"
VOLATILE = {
    "token",
    "access_token",
    "refresh_token",
    "reset_code",
    "code",
    "secret",
    "otpauth_uri",
    "user_agent",
}
TIMESTAMPS = {"created_at", "last_used_at", "expires_at", "reset_expires_at"}
SESSION_ID = re.compile(r"[0-9a-f]{32}")


def normalise(body: Any, created: set[int]) -> Any:
    if isinstance(body, dict):
        out = {}
        for key, value in body.items():
            if key in VOLATILE and isinstance(value, str):
                out[key] = "<token>"
            elif key in TIMESTAMPS and isinstance(value, str):
                out[key] = "<timestamp>"
            elif key == "id" and isinstance(value, str) and SESSION_ID.fullmatch(value):
                out[key] = "<token>"
            elif key == "id" and value in created:
                out[key] = "<created-id>"
            else:
                out[key] = normalise(value, created)
        return out
    if isinstance(body, list):
        return [normalise(v, created) for v in body]
    return body


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def session_id(token: str) -> str:
    from jose import jwt

    return jwt.get_unverified_claims(token)["jti"]


Run = Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]]
CASES: dict[str, tuple[str, Run]] = {}


def case(name: str, request: str):
    def register(run: Run) -> Run:
        CASES[name] = (request, run)
        return run

    return register


# --- tokens ---------------------------------------------------------------------------
@case("token_json", "POST /api/auth/token")
async def _(api, admin):
    return await api.post(
        "/api/auth/token", json={"email": "amol@example.com", "password": PASSWORD}
    )


@case("token_form", "POST /api/auth/token")
async def _(api, admin):
    return await api.post(
        "/api/auth/token", data={"username": "Atul", "password": PASSWORD, "grant_type": "password"}
    )


@case("token_wrong_password", "POST /api/auth/token")
async def _(api, admin):
    return await api.post("/api/auth/token", json={"email": "atul", "password": "wrong-password"})


@case("token_missing_password", "POST /api/auth/token")
async def _(api, admin):
    return await api.post("/api/auth/token", json={"email": "atul"})


@case("token_malformed_json", "POST /api/auth/token")
async def _(api, admin):
    return await api.post(
        "/api/auth/token", content="{", headers={"Content-Type": "application/json"}
    )


@case("refresh", "POST /api/auth/refresh")
async def _(api, admin):
    pair = (await api.post("/api/auth/token", json={"email": "atul", "password": PASSWORD})).json()
    return await api.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})


@case("refresh_spent", "POST /api/auth/refresh")
async def _(api, admin):
    pair = (await api.post("/api/auth/token", json={"email": "atul", "password": PASSWORD})).json()
    await api.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    return await api.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})


@case("refresh_missing_token", "POST /api/auth/refresh")
async def _(api, admin):
    return await api.post("/api/auth/refresh", json={})


def totp_enabled(user_id: int) -> None:
    """TOTP on for a user, straight in the database (its codes are not needed here)."""
    with sql(os.environ["DATABASE_URL"]) as cur:
        cur.execute(
            "update public.users set totp_secret = %s, totp_enabled_at = now() where id = %s",
            (TOTP_SECRET, user_id),
        )


@case("token_totp_required", "POST /api/auth/token")
async def _(api, admin):
    totp_enabled(3)
    return await api.post("/api/auth/token", json={"email": "atul", "password": PASSWORD})


@case("token_totp_invalid", "POST /api/auth/token")
async def _(api, admin):
    totp_enabled(3)
    body = {"email": "atul", "password": PASSWORD, "totp": "abcdef"}
    return await api.post("/api/auth/token", json=body)


# --- sessions -------------------------------------------------------------------------
@case("session", "GET /api/auth/session")
async def _(api, admin):
    return await api.get("/api/auth/session", headers=h(admin))


@case("session_of_a_viewer", "GET /api/auth/session")
async def _(api, admin):
    return await api.get("/api/auth/session", headers=h(await login(api, "amol@example.com")))


@case("session_no_token", "GET /api/auth/session")
async def _(api, admin):
    return await api.get("/api/auth/session")


@case("sessions", "GET /api/auth/sessions")
async def _(api, admin):
    await api.post("/api/auth/token", json={"email": "alok", "password": PASSWORD})
    return await api.get("/api/auth/sessions", headers=h(admin))


@case("session_delete", "DELETE /api/auth/sessions/{id}")
async def _(api, admin):
    other = await login(api)
    return await api.delete(f"/api/auth/sessions/{session_id(other)}", headers=h(admin))


@case("session_delete_unknown", "DELETE /api/auth/sessions/{id}")
async def _(api, admin):
    return await api.delete(f"/api/auth/sessions/{'0' * 32}", headers=h(admin))


@case("session_delete_bad_id", "DELETE /api/auth/sessions/{id}")
async def _(api, admin):
    return await api.delete("/api/auth/sessions/abc", headers=h(admin))


@case("session_delete_id_too_long", "DELETE /api/auth/sessions/{id}")
async def _(api, admin):
    return await api.delete("/api/auth/sessions/" + "a" * 65, headers=h(admin))


@case("sessions_delete_others", "DELETE /api/auth/sessions")
async def _(api, admin):
    await login(api)
    await api.post("/api/auth/token", json={"email": "alok", "password": PASSWORD})
    return await api.delete("/api/auth/sessions", headers=h(admin))


# --- passwords ------------------------------------------------------------------------
@case("password_change", "PUT /api/auth/password")
async def _(api, admin):
    await login(api)
    body = {"current_password": PASSWORD, "new_password": STRONG}
    return await api.put("/api/auth/password", json=body, headers=h(admin))


@case("password_change_wrong_current", "PUT /api/auth/password")
async def _(api, admin):
    body = {"current_password": "wrong-password", "new_password": STRONG}
    return await api.put("/api/auth/password", json=body, headers=h(admin))


@case("password_change_weak", "PUT /api/auth/password")
async def _(api, admin):
    body = {"current_password": PASSWORD, "new_password": "password123"}
    return await api.put("/api/auth/password", json=body, headers=h(admin))


@case("reset_password", "POST /api/auth/reset-password")
async def _(api, admin):
    code = (await api.post("/api/admin/users/3/reset", headers=h(admin))).json()["reset_code"]
    return await api.post("/api/auth/reset-password", json={"code": code, "new_password": STRONG})


@case("reset_password_unknown_code", "POST /api/auth/reset-password")
async def _(api, admin):
    return await api.post(
        "/api/auth/reset-password", json={"code": "made-up", "new_password": STRONG}
    )


# --- TOTP -----------------------------------------------------------------------------
@case("totp_setup", "POST /api/auth/totp/setup")
async def _(api, admin):
    return await api.post("/api/auth/totp/setup", headers=h(admin))


@case("totp_enable_without_setup", "POST /api/auth/totp/enable")
async def _(api, admin):
    return await api.post("/api/auth/totp/enable", json={"code": "123456"}, headers=h(admin))


@case("totp_enable_wrong_code", "POST /api/auth/totp/enable")
async def _(api, admin):
    await api.post("/api/auth/totp/setup", headers=h(admin))
    return await api.post("/api/auth/totp/enable", json={"code": "12345x"}, headers=h(admin))


@case("totp_disable_not_enabled", "DELETE /api/auth/totp")
async def _(api, admin):
    return await api.request("DELETE", "/api/auth/totp", json={"code": "123456"}, headers=h(admin))


@case("totp_enable", "POST /api/auth/totp/enable")
async def _(api, admin):
    secret = (await api.post("/api/auth/totp/setup", headers=h(admin))).json()["secret"]
    code = pyotp.TOTP(secret).now()
    return await api.post("/api/auth/totp/enable", json={"code": code}, headers=h(admin))


@case("totp_disable", "DELETE /api/auth/totp")
async def _(api, admin):
    totp_enabled(1)
    code = pyotp.TOTP(TOTP_SECRET).now()
    return await api.request("DELETE", "/api/auth/totp", json={"code": code}, headers=h(admin))


@case("totp_setup_when_enabled", "POST /api/auth/totp/setup")
async def _(api, admin):
    totp_enabled(1)
    return await api.post("/api/auth/totp/setup", headers=h(admin))


@case("totp_enable_when_enabled", "POST /api/auth/totp/enable")
async def _(api, admin):
    totp_enabled(1)
    return await api.post("/api/auth/totp/enable", json={"code": "123456"}, headers=h(admin))


@case("totp_disable_wrong_code", "DELETE /api/auth/totp")
async def _(api, admin):
    totp_enabled(1)
    return await api.request("DELETE", "/api/auth/totp", json={"code": "abcdef"}, headers=h(admin))


# --- admin ----------------------------------------------------------------------------
@case("admin_users", "GET /api/admin/users")
async def _(api, admin):
    return await api.get("/api/admin/users", headers=h(admin))


@case("admin_users_as_member", "GET /api/admin/users")
async def _(api, admin):
    return await api.get("/api/admin/users", headers=h(await login(api, "atul@example.com")))


@case("admin_create_user", "POST /api/admin/users")
async def _(api, admin):
    body = {"username": "kabir", "email": "kabir@example.com", "role": "viewer"}
    return await api.post("/api/admin/users", json=body, headers=h(admin))


@case("admin_create_user_with_password", "POST /api/admin/users")
async def _(api, admin):
    body = {"username": "kabir", "password": STRONG}
    return await api.post("/api/admin/users", json=body, headers=h(admin))


@case("admin_create_user_taken", "POST /api/admin/users")
async def _(api, admin):
    return await api.post("/api/admin/users", json={"username": "amol"}, headers=h(admin))


@case("admin_update_user", "PATCH /api/admin/users/{id}")
async def _(api, admin):
    body = {"role": "viewer", "email": "atul@family.example"}
    return await api.patch("/api/admin/users/3", json=body, headers=h(admin))


@case("admin_update_unknown_user", "PATCH /api/admin/users/{id}")
async def _(api, admin):
    return await api.patch("/api/admin/users/999", json={"role": "viewer"}, headers=h(admin))


@case("admin_demote_last_admin", "PATCH /api/admin/users/{id}")
async def _(api, admin):
    return await api.patch("/api/admin/users/1", json={"role": "member"}, headers=h(admin))


@case("admin_update_nothing", "PATCH /api/admin/users/{id}")
async def _(api, admin):
    return await api.patch("/api/admin/users/3", json={}, headers=h(admin))


@case("admin_reset_user", "POST /api/admin/users/{id}/reset")
async def _(api, admin):
    return await api.post("/api/admin/users/3/reset", headers=h(admin))


@case("admin_reset_unknown_user", "POST /api/admin/users/{id}/reset")
async def _(api, admin):
    return await api.post("/api/admin/users/999/reset", headers=h(admin))


@case("admin_delete_user", "DELETE /api/admin/users/{id}")
async def _(api, admin):
    return await api.delete("/api/admin/users/2", headers=h(admin))


@case("admin_delete_bad_id", "DELETE /api/admin/users/{id}")
async def _(api, admin):
    return await api.delete("/api/admin/users/abc", headers=h(admin))


@case("admin_reset_bad_id", "POST /api/admin/users/{id}/reset")
async def _(api, admin):
    return await api.post("/api/admin/users/abc/reset", headers=h(admin))


@case("admin_delete_last_admin", "DELETE /api/admin/users/{id}")
async def _(api, admin):
    return await api.delete("/api/admin/users/1", headers=h(admin))


@case("admin_delete_unknown_user", "DELETE /api/admin/users/{id}")
async def _(api, admin):
    return await api.delete("/api/admin/users/999", headers=h(admin))


@case("admin_invite", "POST /api/admin/invites")
async def _(api, admin):
    return await api.post(
        "/api/admin/invites", json={"hours": 48, "note": "for Kabir"}, headers=h(admin)
    )


@case("admin_invite_bad_hours", "POST /api/admin/invites")
async def _(api, admin):
    return await api.post("/api/admin/invites", json={"hours": 0}, headers=h(admin))


# --- a viewer's write -----------------------------------------------------------------
@case("viewer_update_expense", "PUT /api/expenses/{expense_id}")
async def _(api, admin):
    viewer = await login(api, "amol@example.com")
    return await api.put("/api/expenses/1", json={"amount": 1}, headers=h(viewer))


@case("viewer_create_expense", "POST /api/expenses")
async def _(api, admin):
    viewer = await login(api, "amol@example.com")
    expense = {"amount": 10, "category_id": 1, "description": "viewer"}
    return await api.post("/api/expenses", json=expense, headers=h(viewer))


@case("viewer_delete_expense", "DELETE /api/expenses/{expense_id}")
async def _(api, admin):
    viewer = await login(api, "amol@example.com")
    return await api.delete("/api/expenses/15", headers=h(viewer))


def max_user_id(dsn: str) -> int:
    with sql(dsn) as cur:
        cur.execute("select max(id) from public.users")
        return cur.fetchone()[0]


@pytest.mark.parametrize("name", sorted(CASES))
async def test_response_matches_golden(api, dsn, name: str):
    request, run = CASES[name]
    load_contract_dataset(dsn, api)
    with sql(dsn) as cur:
        cur.execute("update public.users set role = 'admin' where id = 1")
        cur.execute("update public.users set role = 'viewer' where id = 2")
    known = max_user_id(dsn)
    try:
        admin = await login(api)
        response = await run(api, admin)
        api.cookies.clear()
        created = set(range(known + 1, max_user_id(dsn) + 1))
    finally:
        load_contract_dataset(dsn, api)
    body = normalise(response.json(), created)
    actual = (
        json.dumps(
            {"request": request, "status": response.status_code, "body": body},
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    path = GOLDEN / f"{name}.json"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(actual)
    assert path.exists(), f"no golden {path.name}; run with UPDATE_GOLDEN=1 and review it"
    assert actual == path.read_text(), f"{request} differs from accounts/{path.name}"


def test_every_golden_file_belongs_to_a_case():
    assert sorted(p.stem for p in GOLDEN.glob("*.json") if p.stem not in CASES) == []
