"""Who can join (REGISTRATION_MODE), who reads /health/shadow, and the login cookie's
attributes (COOKIE_SAMESITE / COOKIE_DOMAIN), on the real stack.

The attack these close (security finding 1): an outsider who can reach the API registers
and, being a member, reads every member's emails, expenses and dashboards. With
`invite` or `closed` that registration is refused and stores nothing, so the outsider has
no token; and an ordinary member's token no longer opens /health/shadow.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets

import pytest

from tests.helpers import app_client, bearer, cookie, count_rows, sql, stack_settings

STRONG = "Str0ng!pass"
OUTSIDER = {"username": "mallory", "password": STRONG, "email": "mallory@evil.test"}


def make_invite(dsn: str, expires_in: dt.timedelta = dt.timedelta(hours=1)) -> str:
    code = secrets.token_urlsafe(16)
    with sql(dsn) as cur:
        cur.execute(
            "insert into public.invites (code_sha256, expires_at) values (%s, now() + %s)",
            (hashlib.sha256(code.encode()).hexdigest(), expires_in),
        )
    return code


async def outsider_reads_family_data(client) -> list[int]:
    """Log in as the outsider (if registration let them in) and read what a member can."""
    login = await client.post("/api/auth/login", json={"email": "mallory", "password": STRONG})
    client.cookies.clear()
    if login.status_code != 200:
        return [login.status_code]
    auth = {"Authorization": f"Bearer {login.json()['token']}"}
    return [
        (await client.get(path, headers=auth)).status_code
        for path in (
            "/api/dashboard/users",
            "/api/expenses?user_id=1",
            "/api/dashboard/1/monthly?year=2025&month=1",
        )
    ]


async def test_open_registration_lets_an_outsider_read_the_family(fresh_db):
    """The legacy behaviour (default `open`), pinned so the modes below are shown to matter."""
    async with app_client(stack_settings()) as client:
        registered = await client.post("/api/auth/register", json=OUTSIDER)
        assert registered.status_code == 200
        assert await outsider_reads_family_data(client) == [200, 200, 200]


@pytest.mark.parametrize("body", [OUTSIDER, {}, {"username": "x"}, {"junk": True}])
async def test_closed_registration_is_403_for_any_body_and_stores_nothing(fresh_db, body):
    users = count_rows(fresh_db, "users")
    async with app_client(stack_settings(registration_mode="closed")) as client:
        response = await client.post("/api/auth/register", json=body)
        assert response.status_code == 403
        assert response.json() == {"error": "Registration is closed"}
        assert await outsider_reads_family_data(client) == [401]
    assert count_rows(fresh_db, "users") == users


@pytest.mark.parametrize(
    ("invite", "message"),
    [
        (None, "An invite code is required"),
        ("", "An invite code is required"),
        ("made-up-code", "Invalid or expired invite code"),
        ("x" * 129, "invite_code: String should have at most 128 characters"),
    ],
)
async def test_invite_registration_refuses_a_missing_or_unknown_code(fresh_db, invite, message):
    users = count_rows(fresh_db, "users")
    async with app_client(stack_settings(registration_mode="invite")) as client:
        body = OUTSIDER if invite is None else {**OUTSIDER, "invite_code": invite}
        response = await client.post("/api/auth/register", json=body)
        assert response.status_code == 400
        assert response.json() == {"error": message}
        assert await outsider_reads_family_data(client) == [401]
    assert count_rows(fresh_db, "users") == users


async def test_invite_code_works_once_and_is_stored_hashed(fresh_db):
    code = make_invite(fresh_db)
    async with app_client(stack_settings(registration_mode="invite")) as client:
        first = await client.post(
            "/api/auth/register", json={**OUTSIDER, "username": "cousin", "invite_code": code}
        )
        again = await client.post(
            "/api/auth/register",
            json={**OUTSIDER, "username": "cousin2", "invite_code": code, "email": None},
        )
    assert first.status_code == 200, first.text
    assert first.json()["user"]["name"] == "cousin"
    assert again.status_code == 400
    assert again.json() == {"error": "Invalid or expired invite code"}
    with sql(fresh_db) as cur:
        cur.execute(
            "select code_sha256, used_by is not null, used_at is not null from public.invites"
        )
        [(stored, used_by, used_at)] = cur.fetchall()
        cur.execute("select count(*) from public.users where name = 'cousin2'")
        assert cur.fetchone()[0] == 0
    assert stored == hashlib.sha256(code.encode()).hexdigest() and code not in stored
    assert used_by and used_at


async def test_expired_invite_is_refused(fresh_db):
    code = make_invite(fresh_db, expires_in=dt.timedelta(seconds=-1))
    async with app_client(stack_settings(registration_mode="invite")) as client:
        response = await client.post("/api/auth/register", json={**OUTSIDER, "invite_code": code})
    assert response.status_code == 400
    assert response.json() == {"error": "Invalid or expired invite code"}
    assert count_rows(fresh_db, "users") == 4


async def test_refused_registration_leaves_the_invite_unused(fresh_db):
    code = make_invite(fresh_db)
    async with app_client(stack_settings(registration_mode="invite")) as client:
        taken = await client.post(
            "/api/auth/register", json={**OUTSIDER, "username": "Alok", "invite_code": code}
        )
        later = await client.post("/api/auth/register", json={**OUTSIDER, "invite_code": code})
    assert taken.status_code == 400 and taken.json() == {"error": "Username already exists"}
    assert later.status_code == 200


def start_warnings(output: str) -> list[str]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line["message"] for line in lines if line.get("level") == "WARNING"]


async def test_open_registration_in_prod_logs_a_warning_at_start(fresh_db, capsys):
    async with app_client(
        stack_settings(environment="prod", registration_mode="open", metrics_token="m" * 40)
    ):
        pass
    warnings = start_warnings(capsys.readouterr().err)
    assert any(w.startswith("REGISTRATION_MODE=open in prod") for w in warnings), warnings


async def test_invite_registration_in_prod_starts_without_that_warning(fresh_db, capsys):
    async with app_client(
        stack_settings(environment="prod", registration_mode="invite", metrics_token="m" * 40)
    ):
        pass
    assert not any("REGISTRATION_MODE" in w for w in start_warnings(capsys.readouterr().err))


# --------------------------------------------------------------------------------------
# /health/shadow: operators only
# --------------------------------------------------------------------------------------
async def test_a_self_registered_member_cannot_read_the_shadow_report(fresh_db):
    async with app_client(stack_settings(metrics_token="ops-secret-token")) as client:
        await client.post("/api/auth/register", json=OUTSIDER)
        login = await client.post("/api/auth/login", json={"email": "mallory", "password": STRONG})
        client.cookies.clear()
        member = bearer(login.json()["token"])
        as_member = await client.get("/health/shadow", headers=member)
        with_cookie = await client.get("/health/shadow", headers=cookie(login.json()["token"]))
        anonymous = await client.get("/health/shadow")
        operator = await client.get(
            "/health/shadow", headers={"Authorization": "Bearer ops-secret-token"}
        )
    for refused in (as_member, with_cookie, anonymous):
        assert refused.status_code == 401
        assert refused.json() == {"error": "Operator token required"}
    assert operator.status_code == 200 and operator.json()["enabled"] is False


async def test_shadow_report_is_refused_to_everyone_without_a_metrics_token(fresh_db):
    async with app_client(stack_settings()) as client:
        response = await client.get("/health/shadow", headers=bearer())
    assert response.status_code == 403
    assert response.json() == {"error": "Set METRICS_TOKEN to read this endpoint"}


# --------------------------------------------------------------------------------------
# the login cookie
# --------------------------------------------------------------------------------------
def cookie_attributes(header: str) -> dict[str, str]:
    parts = [p.strip() for p in header.split(";")]
    return {k.lower(): v for k, _, v in (p.partition("=") for p in parts[1:])}


@pytest.mark.parametrize(
    ("samesite", "domain", "secure"),
    [("strict", None, False), ("lax", "family.example", False), ("none", "api.example", True)],
)
async def test_login_and_logout_cookies_carry_the_configured_attributes(
    fresh_db, samesite, domain, secure
):
    settings = stack_settings(cookie_samesite=samesite, cookie_domain=domain)
    async with app_client(settings) as client:
        login = await client.post(
            "/api/auth/login", json={"email": "alok@example.com", "password": "password123"}
        )
        client.cookies.clear()
        logout = await client.post(
            "/api/auth/logout", headers={"Authorization": f"Bearer {login.json()['token']}"}
        )
    set_on_login = cookie_attributes(login.headers["set-cookie"])
    set_on_logout = cookie_attributes(logout.headers["set-cookie"])
    for attrs in (set_on_login, set_on_logout):
        assert attrs["samesite"].lower() == samesite
        assert attrs.get("domain") == domain
        assert ("secure" in attrs) is secure
        assert "httponly" in attrs and attrs["path"] == "/"
    assert set_on_logout["max-age"] == "0"
