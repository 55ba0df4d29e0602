"""POST /api/auth/login, /register, /logout and GET /api/auth/me (the legacy contract).

A legacy login is a session like any other (issue 22): its token's jti is the id of a row
of public.sessions, listed by GET /api/auth/sessions and ended by DELETE. The new account
endpoints are in routers/accounts.py, the admin API in routers/admin.py."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request

import totp
from auth import (
    TOKEN_INVALID,
    audit_headers,
    clear_session_cookie,
    create_token,
    new_session_id,
    session_headers,
    set_session_cookie,
)
from database import Database, execute
from deps import AppSettings, CurrentUser, Db, Limits, Passwords
from edge import JsonRoute
from errors import ApiError, JsonResponse, error_responses
from models import (
    LoginRequestTotp,
    LoginResponse,
    MessageResponse,
    PublicUser,
    RegisterRequest,
    RegisterResponse,
)
from passwords import PasswordHasher
from ratelimit import AuthLimits, login_account_key

router = APIRouter(prefix="/api/auth", tags=["auth"], route_class=JsonRoute)
BAD_LOGIN = "Invalid email or password"
REGISTRATION_CLOSED = "Registration is closed"
INVITE_REQUIRED = "An invite code is required"
INVITE_INVALID = "Invalid or expired invite code"


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def public_user(row: dict) -> dict:
    return {"id": row["id"], "name": row["name"], "email": row.get("email")}


TOTP_REQUIRED = "TOTP code required"
TOTP_INVALID = "Invalid TOTP code"


@dataclass(frozen=True)
class NewSession:
    """What record_login stores when a login succeeds: the session row (its id is the
    access tokens' jti) and, for /api/auth/token, the first refresh token's SHA-256."""

    id: str
    kind: str
    expires_at: dt.datetime
    refresh_sha256: str | None = None
    refresh_expires_at: dt.datetime | None = None


async def authenticate(
    request: Request,
    db: Database,
    passwords: PasswordHasher,
    limits: AuthLimits,
    login: str,
    password: str,
    totp_code: str | None,
    session: NewSession,
) -> tuple[dict, str]:
    """The one login check of /login and /token -> (account, role). A wrong password, a
    missing or wrong TOTP code (once enabled) and a reused TOTP code all count toward the
    login limit; record_login writes the audit row and, on success, the session in one
    transaction (sql/R31_auth_sessions.sql)."""
    client = client_of(request)
    rows = await execute(db.service.rpc("find_login_user", {"p_login": login}))
    account = rows[0] if rows else None
    # One counter per account however it is spelled; unknown names by their canonical form.
    counted_as = login_account_key(account["id"] if account else None, login)
    await limits.before_login(client, counted_as)
    # An unknown account is checked against a dummy hash: same answer, same time.
    verified = await passwords.verify(password, account["password_hash"] if account else None)
    refusal = BAD_LOGIN
    step = None
    if account is not None and verified and account.get("totp_secret"):
        step = totp.matching_step(account["totp_secret"], totp_code) if totp_code else None
        if step is None:
            verified, refusal = False, TOTP_INVALID if totp_code else TOTP_REQUIRED
        else:
            refusal = TOTP_INVALID  # if Postgres finds the step already used
    # the audit row, on success and failure alike (same work, same time either way)
    result = await execute(
        db.service.rpc(
            "record_login",
            {
                "p_user_id": account["id"] if account else None,
                "p_success": verified,
                "p_totp_step": step,
                "p_session_id": session.id,
                "p_kind": session.kind,
                "p_expires_at": session.expires_at.isoformat(),
                "p_user_agent": request.headers.get("user-agent"),
                "p_ip": client,
                "p_refresh_sha256": session.refresh_sha256,
                "p_refresh_expires_at": session.refresh_expires_at.isoformat()
                if session.refresh_expires_at
                else None,
            },
        ),
        audit_headers(request),
    )
    if account is None or not verified or not (result or {}).get("ok"):
        raise ApiError(401, refusal)  # stays counted by before_login
    await limits.login_succeeded(client, counted_as)
    return account, result["role"]


@router.post(
    "/login",
    response_model=LoginResponse,
    responses=error_responses(400, 401, 413, 429, 500, 503),
    summary="Log in with email (or username) and password (and `totp` once enabled); "
    "sets the `jwt` cookie",
)
async def login(
    body: LoginRequestTotp,
    request: Request,
    db: Db,
    passwords: Passwords,
    limits: Limits,
    settings: AppSettings,
) -> JsonResponse:
    session_id = new_session_id()
    lifetime = dt.timedelta(hours=settings.jwt_expire_hours)
    expires = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + lifetime
    account, _ = await authenticate(
        request,
        db,
        passwords,
        limits,
        body.email,
        body.password,
        body.totp,
        NewSession(session_id, "login", expires),
    )
    token, _ = create_token(settings, account, jti=session_id)
    response = JsonResponse(
        {"message": "Login successful", "token": token, "user": public_user(account)}
    )
    set_session_cookie(response, settings, token)
    return response


def invite_sha256(code: str) -> str:
    """Invites are stored as the SHA-256 of the code (scripts/users.py invite)."""
    return hashlib.sha256(code.encode()).hexdigest()


async def registration_allowed(settings: AppSettings) -> None:
    """REGISTRATION_MODE=closed refuses before the body is even read."""
    if settings.registration_mode == "closed":
        raise ApiError(403, REGISTRATION_CLOSED)


@router.post(
    "/register",
    response_model=RegisterResponse,
    responses=error_responses(400, 403, 413, 429, 500, 503),
    dependencies=[Depends(registration_allowed)],
    summary="Create an account (username 3-30 of [A-Za-z0-9_], strong password); "
    "with REGISTRATION_MODE=invite an `invite_code` is required, with closed "
    "it is 403",
)
async def register(
    body: RegisterRequest,
    request: Request,
    db: Db,
    passwords: Passwords,
    limits: Limits,
    settings: AppSettings,
) -> JsonResponse:
    await limits.register_attempt(client_of(request))
    invited = settings.registration_mode == "invite"
    if invited:
        if not body.invite_code:
            raise ApiError(400, INVITE_REQUIRED)
        code_sha256 = invite_sha256(body.invite_code)
        # a made-up code costs one indexed lookup, not a bcrypt hash
        if not await execute(db.service.rpc("invite_is_usable", {"p_code_sha256": code_sha256})):
            raise ApiError(400, INVITE_INVALID)
    password_hash = await passwords.hash(body.password)
    params = {"p_name": body.username, "p_email": body.email, "p_password_hash": password_hash}
    # register_user writes the audit row in the same transaction (the invited path calls it)
    if invited:
        user = await execute(
            db.service.rpc("register_user_invited", {**params, "p_code_sha256": code_sha256}),
            audit_headers(request),
        )
    else:
        user = await execute(db.service.rpc("register_user", params), audit_headers(request))
    return JsonResponse({"message": "Registration successful", "user": user})


@router.get(
    "/me",
    response_model=PublicUser,
    responses=error_responses(401, 500, 503),
    summary="The logged-in user, read fresh from the database",
)
async def me(user: CurrentUser, db: Db) -> JsonResponse:
    # auth_me checks the session itself (sql/R31_auth_sessions.sql), hook or no hook
    row = await execute(db.service.rpc("auth_me", {}), session_headers(user))
    if not row:
        raise ApiError(401, TOKEN_INVALID)
    return JsonResponse(public_user(row))


@router.post(
    "/logout",
    response_model=MessageResponse,
    responses=error_responses(401, 500, 503),
    summary="Revoke the token (refused from now on) and clear the cookie",
)
async def logout(
    user: CurrentUser, db: Db, request: Request, settings: AppSettings
) -> JsonResponse:
    await execute(
        db.service.rpc(
            "revoke_token", {"p_jti": user.jti, "p_expires_at": user.expires_at.isoformat()}
        ),
        audit_headers(request, user),
    )
    response = JsonResponse({"message": "Logout successful"})
    clear_session_cookie(response, settings)
    return response
