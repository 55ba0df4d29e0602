"""POST /api/auth/login, /register, /logout and GET /api/auth/me (the legacy contract)."""
from __future__ import annotations

from fastapi import APIRouter, Request

from auth import COOKIE_NAME, TOKEN_INVALID, audit_headers, create_token, session_headers
from database import execute
from deps import CurrentUser, Db, Limits, Passwords
from models import (ApiError, JsonResponse, LoginRequest, LoginResponse, MessageResponse,
                    PublicUser, RegisterRequest, RegisterResponse, error_responses)
from ratelimit import login_account_key

router = APIRouter(prefix="/api/auth", tags=["auth"])
BAD_LOGIN = "Invalid email or password"


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def public_user(row: dict) -> dict:
    return {"id": row["id"], "name": row["name"], "email": row.get("email")}


@router.post("/login", response_model=LoginResponse,
             responses=error_responses(400, 401, 413, 429, 500, 503),
             summary="Log in with email (or username) and password; sets the `jwt` cookie")
async def login(body: LoginRequest, request: Request, db: Db, passwords: Passwords,
                limits: Limits) -> JsonResponse:
    client = client_of(request)
    rows = await execute(db.service.rpc("find_login_user", {"p_login": body.email}))
    account = rows[0] if rows else None
    # One counter per account however it is spelled; unknown names by their canonical form.
    counted_as = login_account_key(account["id"] if account else None, body.email)
    await limits.before_login(client, counted_as)
    verified = await passwords.verify(body.password,
                                      account["password_hash"] if account else None)
    # the audit row, on success and failure alike (same work, same time either way)
    await execute(db.service.rpc("record_login", {
        "p_user_id": account["id"] if account else None, "p_success": verified}),
        audit_headers(request))
    if not verified:
        raise ApiError(401, BAD_LOGIN)  # stays counted by before_login
    await limits.login_succeeded(client, counted_as)
    token, _ = create_token(db.settings, account)
    response = JsonResponse({"message": "Login successful", "token": token,
                             "user": public_user(account)})
    response.set_cookie(COOKIE_NAME, token, max_age=db.settings.jwt_expire_hours * 3600,
                        httponly=True, samesite="strict", secure=db.settings.is_prod, path="/")
    return response


@router.post("/register", response_model=RegisterResponse,
             responses=error_responses(400, 413, 429, 500, 503),
             summary="Create an account (username 3-30 of [A-Za-z0-9_], strong password)")
async def register(body: RegisterRequest, request: Request, db: Db, passwords: Passwords,
                   limits: Limits) -> JsonResponse:
    await limits.register_attempt(client_of(request))
    password_hash = await passwords.hash(body.password)
    user = await execute(db.service.rpc("register_user", {
        "p_name": body.username, "p_email": body.email, "p_password_hash": password_hash}),
        audit_headers(request))
    return JsonResponse({"message": "Registration successful", "user": user})


@router.get("/me", response_model=PublicUser, responses=error_responses(401, 500, 503),
            summary="The logged-in user, read fresh from the database")
async def me(user: CurrentUser, db: Db) -> JsonResponse:
    rows = await execute(db.service.table("users").select("id,name,email").eq("id", user.id),
                         session_headers(user))
    if not rows:
        raise ApiError(401, TOKEN_INVALID)
    return JsonResponse(public_user(rows[0]))


@router.post("/logout", response_model=MessageResponse, responses=error_responses(401, 500, 503),
             summary="Revoke the token (refused from now on) and clear the cookie")
async def logout(user: CurrentUser, db: Db, request: Request) -> JsonResponse:
    await execute(db.service.rpc("revoke_token", {
        "p_jti": user.jti, "p_expires_at": user.expires_at.isoformat()}),
        audit_headers(request, user))
    response = JsonResponse({"message": "Logout successful"})
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict",
                           secure=db.settings.is_prod)
    return response
