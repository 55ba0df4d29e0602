"""Accounts beyond the legacy contract (issue 22), all under /api/auth:

- POST /token (JSON or the OAuth2 password form, for /docs' Authorize) and POST /refresh:
  short access tokens (ACCESS_TOKEN_MINUTES) and rotating refresh tokens
  (REFRESH_TOKEN_DAYS, stored only as SHA-256; a spent one presented again ends its chain);
- GET /session, GET/DELETE /sessions[/{id}]: the caller's sessions, legacy logins included;
- PUT /password and POST /reset-password;
- POST /totp/setup, /totp/enable and DELETE /totp.

Every rule (rotation, reuse, who owns a session, single-use codes) is decided by Postgres
in the transaction of the change, which writes its audit row (sql/R32_accounts.sql).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

import totp
from auth import (
    TokenUser,
    audit_headers,
    create_token,
    new_secret,
    new_session_id,
    session_headers,
    sha256_hex,
)
from database import execute
from deps import AppSettings, CurrentUser, Db, Limits, Passwords
from edge import JsonRoute
from errors import ApiError, JsonResponse, error_responses
from models import (
    CurrentSession,
    LoginRequestTotp,
    PasswordChange,
    PasswordReset,
    PublicUser,
    RefreshRequest,
    SessionInfo,
    SessionRevoked,
    SessionsEnded,
    TokenResponse,
    TotpCode,
    TotpSetup,
    TotpStatus,
)
from ratelimit import login_account_key
from routers.auth import NewSession, authenticate, client_of, public_user

router = APIRouter(prefix="/api/auth", tags=["accounts"], route_class=JsonRoute)
WRONG_PASSWORD = "Current password is incorrect"
RESET_INVALID = "Invalid or expired reset code"
REFRESH_INVALID = "Invalid or expired refresh token"
TOTP_INVALID = "Invalid TOTP code"
TOTP_NOT_SET_UP = "Start TOTP setup first"
TOTP_NOT_ENABLED = "TOTP is not enabled"
FORM = "application/x-www-form-urlencoded"
SESSION_ID_RE = re.compile(r"[0-9a-f]{32}|legacy-[0-9a-f]{40}")
SESSION_NOT_FOUND = "Session not found"
SessionId = Annotated[str, Path(max_length=64)]

TOKEN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": LoginRequestTotp.model_json_schema()},
            FORM: {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "username": {"type": "string", "description": "email or username"},
                        "password": {"type": "string", "format": "password"},
                        "totp": {"type": "string", "description": "once TOTP is enabled"},
                    },
                }
            },
        },
    }
}


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


async def token_request(request: Request) -> LoginRequestTotp:
    """The body of POST /api/auth/token: JSON {"email","password","totp"?}, or the OAuth2
    password form (username, password; what /docs' Authorize sends). Read by hand: the
    form needs no multipart library, and both spellings get the login's rules."""
    raw = await request.body()
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    data: Any
    if media == FORM:
        try:
            form = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise ApiError(400, "Malformed form body") from None
        names = {"username": "email", "email": "email", "password": "password", "totp": "totp"}
        data = {field: form[name][0] for name, field in names.items() if form.get(name)}
    else:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ApiError(400, "Malformed JSON body") from None
    try:
        return LoginRequestTotp.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


def token_answer(
    settings: AppSettings, user: dict, session_id: str, refresh_token: str
) -> JsonResponse:
    lifetime = dt.timedelta(minutes=settings.access_token_minutes)
    token, _ = create_token(settings, user, jti=session_id, lifetime=lifetime)
    return JsonResponse(
        {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": int(lifetime.total_seconds()),
            "refresh_token": refresh_token,
            "user": public_user(user),
        }
    )


@router.post(
    "/token",
    response_model=TokenResponse,
    responses=error_responses(400, 401, 413, 429, 500, 503),
    openapi_extra=TOKEN_BODY,
    summary="Log in for an access token (ACCESS_TOKEN_MINUTES) and a refresh token "
    "(REFRESH_TOKEN_DAYS); JSON or the OAuth2 password form",
)
async def token(
    request: Request, db: Db, passwords: Passwords, limits: Limits, settings: AppSettings
) -> JsonResponse:
    body = await token_request(request)
    session_id, refresh_token = new_session_id(), new_secret()
    refresh_expires = now() + dt.timedelta(days=settings.refresh_token_days)
    session = NewSession(
        session_id, "token", refresh_expires, sha256_hex(refresh_token), refresh_expires
    )
    account, _ = await authenticate(
        request, db, passwords, limits, body.email, body.password, body.totp, session
    )
    return token_answer(settings, account, session_id, refresh_token)


@router.post(
    "/refresh",
    response_model=TokenResponse,
    responses=error_responses(400, 401, 413, 500, 503),
    summary="A new access and refresh token for a refresh token, which is spent; a spent "
    "one presented again ends its whole session",
)
async def refresh(
    body: RefreshRequest, request: Request, db: Db, settings: AppSettings
) -> JsonResponse:
    new_token = new_secret()
    result = await execute(
        db.service.rpc(
            "refresh_session",
            {
                "p_token_sha256": sha256_hex(body.refresh_token),
                "p_new_sha256": sha256_hex(new_token),
                "p_new_expires_at": (
                    now() + dt.timedelta(days=settings.refresh_token_days)
                ).isoformat(),
            },
        ),
        audit_headers(request),
    )
    if not result or not result.get("ok"):
        raise ApiError(401, REFRESH_INVALID)
    return token_answer(settings, result["user"], result["session_id"], new_token)


@router.get(
    "/session",
    response_model=CurrentSession,
    responses=error_responses(401, 500, 503),
    summary="The caller, their role and their session (for a frontend; /me is unchanged)",
)
async def current_session(user: CurrentUser, db: Db) -> JsonResponse:
    body = await execute(
        db.service.rpc(
            "current_session",
            {"p_session_id": user.jti, "p_expires_at": user.expires_at.isoformat()},
        ),
        session_headers(user),
    )
    return JsonResponse(body)


@router.get(
    "/sessions",
    response_model=list[SessionInfo],
    responses=error_responses(401, 500, 503),
    summary="The caller's live sessions (logins and token sessions), newest first",
)
async def list_sessions(user: CurrentUser, db: Db) -> JsonResponse:
    rows = await execute(
        db.service.rpc("list_sessions", {"p_current": user.jti}), session_headers(user)
    )
    return JsonResponse(rows)


@router.delete(
    "/sessions/{session_id}",
    response_model=SessionRevoked,
    responses=error_responses(400, 401, 404, 500, 503),
    summary="End one of the caller's sessions: its access and refresh tokens are refused "
    "at once, on every instance",
)
async def revoke_session(
    session_id: SessionId, user: CurrentUser, db: Db, request: Request
) -> JsonResponse:
    if not SESSION_ID_RE.fullmatch(session_id):  # no such session can exist
        raise ApiError(404, SESSION_NOT_FOUND)
    body = await execute(
        db.service.rpc("revoke_session", {"p_id": session_id}), audit_headers(request, user)
    )
    return JsonResponse(body)


def own_session_params(user: TokenUser) -> dict[str, Any]:
    return {
        "p_current": user.jti,
        "p_expires_at": user.expires_at.isoformat(),
        "p_issued_at": user.issued_at,
    }


@router.delete(
    "/sessions",
    response_model=SessionsEnded,
    responses=error_responses(401, 500, 503),
    summary="End every session of the caller but the current one",
)
async def revoke_other_sessions(user: CurrentUser, db: Db, request: Request) -> JsonResponse:
    body = await execute(
        db.service.rpc("revoke_other_sessions", own_session_params(user)),
        audit_headers(request, user),
    )
    return JsonResponse(body)


@router.put(
    "/password",
    response_model=SessionsEnded,
    responses=error_responses(400, 401, 413, 429, 500, 503),
    summary="Change the password (register's rules); every other session ends. A wrong "
    "current password counts toward the login limit",
)
async def change_password(
    body: PasswordChange,
    user: CurrentUser,
    db: Db,
    passwords: Passwords,
    limits: Limits,
    request: Request,
) -> JsonResponse:
    client, counted_as = client_of(request), login_account_key(user.id, "")
    await limits.before_login(client, counted_as)
    stored = await execute(db.service.rpc("caller_password_hash", {}), session_headers(user))
    if not await passwords.verify(body.current_password, stored):
        raise ApiError(400, WRONG_PASSWORD)  # stays counted by before_login
    await limits.login_succeeded(client, counted_as)
    new_hash = await passwords.hash(body.new_password)
    result = await execute(
        db.service.rpc(
            "change_password", {"p_password_hash": new_hash, **own_session_params(user)}
        ),
        audit_headers(request, user),
    )
    return JsonResponse(result)


@router.post(
    "/reset-password",
    response_model=PublicUser,
    responses=error_responses(400, 413, 429, 500, 503),
    summary="Set a new password with an admin's single-use reset code; every session of "
    "the user ends",
)
async def reset_password(
    body: PasswordReset, db: Db, passwords: Passwords, limits: Limits, request: Request
) -> JsonResponse:
    await limits.register_attempt(client_of(request))
    code_sha256 = sha256_hex(body.code)
    # a made-up code costs one indexed lookup, not a bcrypt hash
    if not await execute(db.service.rpc("reset_code_is_usable", {"p_code_sha256": code_sha256})):
        raise ApiError(400, RESET_INVALID)
    new_hash = await passwords.hash(body.new_password)
    user = await execute(
        db.service.rpc(
            "reset_password", {"p_code_sha256": code_sha256, "p_password_hash": new_hash}
        ),
        audit_headers(request),
    )
    return JsonResponse(user)


@router.post(
    "/totp/setup",
    response_model=TotpSetup,
    responses=error_responses(401, 409, 500, 503),
    summary="Start TOTP: a new secret and its otpauth:// URI for an authenticator app",
)
async def totp_setup(user: CurrentUser, db: Db) -> JsonResponse:
    secret = totp.new_secret()
    await execute(db.service.rpc("totp_begin", {"p_secret": secret}), session_headers(user))
    account = user.email or user.name
    return JsonResponse({"secret": secret, "otpauth_uri": totp.provisioning_uri(secret, account)})


async def checked_step(
    secret: str | None, code: str, user: TokenUser, limits: Limits, request: Request
) -> int:
    """The time step of a valid code; wrong codes count toward the login limit."""
    client, counted_as = client_of(request), login_account_key(user.id, "")
    await limits.before_login(client, counted_as)
    step = totp.matching_step(secret, code) if secret else None
    if step is None:
        raise ApiError(400, TOTP_INVALID)
    await limits.login_succeeded(client, counted_as)
    return step


@router.post(
    "/totp/enable",
    response_model=TotpStatus,
    responses=error_responses(400, 401, 409, 429, 500, 503),
    summary="Enable TOTP with a code from the secret of /totp/setup; from then on login "
    "and token need `totp`",
)
async def totp_enable(
    body: TotpCode, user: CurrentUser, db: Db, limits: Limits, request: Request
) -> JsonResponse:
    state = await execute(db.service.rpc("totp_state", {}), session_headers(user))
    if not state or state["enabled"]:
        raise ApiError(409, "TOTP is already enabled")
    if not state["pending"]:
        raise ApiError(400, TOTP_NOT_SET_UP)
    step = await checked_step(state["pending"], body.code, user, limits, request)
    result = await execute(
        db.service.rpc("totp_enable", {"p_secret": state["pending"], "p_step": step}),
        audit_headers(request, user),
    )
    return JsonResponse(result)


@router.delete(
    "/totp",
    response_model=TotpStatus,
    responses=error_responses(400, 401, 429, 500, 503),
    summary="Disable TOTP with a current code",
)
async def totp_disable(
    body: TotpCode, user: CurrentUser, db: Db, limits: Limits, request: Request
) -> JsonResponse:
    state = await execute(db.service.rpc("totp_state", {}), session_headers(user))
    if not state or not state["enabled"]:
        raise ApiError(400, TOTP_NOT_ENABLED)
    step = await checked_step(state["secret"], body.code, user, limits, request)
    result = await execute(
        db.service.rpc("totp_disable", {"p_step": step}), audit_headers(request, user)
    )
    return JsonResponse(result)
