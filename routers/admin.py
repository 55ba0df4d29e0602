"""/api/admin/*: the family's admin without a terminal (issue 22). Admins only: every
function called here starts with public.require_admin() (403 for anyone else), keeps the
last admin (409), and writes one audit row in the transaction of its change
(sql/R32_accounts.sql). A reset code or invite code exists in clear only in the answer
that creates it; Postgres stores its SHA-256. No password or hash in any answer."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request

from auth import audit_headers, new_secret, session_headers, sha256_hex
from database import execute
from deps import AppSettings, CurrentUser, Db, Passwords
from edge import JsonRoute
from errors import ApiError, JsonResponse, error_responses
from models import (
    AdminUser,
    AdminUserChanges,
    AdminUserCreate,
    AdminUserCreated,
    AdminUserDeleted,
    Id,
    InviteCreate,
    InviteCreated,
    ResetCode,
)

router = APIRouter(prefix="/api/admin", tags=["admin"], route_class=JsonRoute)
NOTHING_TO_CHANGE = "Nothing to change: send role, email or name"


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@router.get(
    "/users",
    response_model=list[AdminUser],
    responses=error_responses(401, 403, 500, 503),
    summary="Every member with role and expense count (admins only)",
)
async def list_users(user: CurrentUser, db: Db) -> JsonResponse:
    return JsonResponse(
        await execute(db.service.rpc("admin_list_users", {}), session_headers(user))
    )


@router.post(
    "/users",
    response_model=AdminUserCreated,
    status_code=201,
    responses=error_responses(400, 401, 403, 413, 500, 503),
    summary="Add a member (admins only); without a password the answer carries a one-time "
    "`reset_code` to hand over",
)
async def create_user(
    body: AdminUserCreate,
    user: CurrentUser,
    db: Db,
    passwords: Passwords,
    settings: AppSettings,
    request: Request,
) -> JsonResponse:
    code = None if body.password else new_secret()
    expires = now() + dt.timedelta(hours=settings.reset_code_hours)
    created = await execute(
        db.service.rpc(
            "admin_create_user",
            {
                "p_name": body.username,
                "p_email": body.email,
                "p_role": body.role,
                "p_password_hash": await passwords.hash(body.password) if body.password else None,
                "p_reset_sha256": sha256_hex(code) if code else None,
                "p_reset_expires_at": expires.isoformat() if code else None,
            },
        ),
        audit_headers(request, user),
    )
    if code:
        created = {**created, "reset_code": code, "reset_expires_at": expires.isoformat()}
    return JsonResponse(created, status_code=201)


@router.patch(
    "/users/{user_id}",
    response_model=AdminUser,
    responses=error_responses(400, 401, 403, 404, 409, 413, 500, 503),
    summary="Change a member's role, email or name (admins only); the last admin cannot "
    "be demoted (409)",
)
async def update_user(
    user_id: Id, body: AdminUserChanges, user: CurrentUser, db: Db, request: Request
) -> JsonResponse:
    changes = body.model_dump(include=body.model_fields_set)
    if not changes:
        raise ApiError(400, NOTHING_TO_CHANGE)
    for field in ("role", "name"):
        if field in changes and changes[field] is None:
            raise ApiError(400, f"{field}: must not be null")
    updated = await execute(
        db.service.rpc("admin_update_user", {"p_id": user_id, "p_changes": changes}),
        audit_headers(request, user),
    )
    return JsonResponse(updated)


@router.post(
    "/users/{user_id}/reset",
    response_model=ResetCode,
    responses=error_responses(401, 403, 404, 500, 503),
    summary="A single-use password reset code (RESET_CODE_HOURS) for a member; their "
    "sessions end and TOTP is cleared (admins only)",
)
async def reset_user(
    user_id: Id, user: CurrentUser, db: Db, settings: AppSettings, request: Request
) -> JsonResponse:
    code = new_secret()
    expires = now() + dt.timedelta(hours=settings.reset_code_hours)
    result = await execute(
        db.service.rpc(
            "admin_reset_user",
            {
                "p_id": user_id,
                "p_code_sha256": sha256_hex(code),
                "p_expires_at": expires.isoformat(),
            },
        ),
        audit_headers(request, user),
    )
    return JsonResponse({"reset_code": code, "expires_at": result["expires_at"]})


@router.delete(
    "/users/{user_id}",
    response_model=AdminUserDeleted,
    responses=error_responses(401, 403, 404, 409, 500, 503),
    summary="Delete a member and their expenses; answers what was removed (admins only); "
    "the last admin stays (409)",
)
async def delete_user(user_id: Id, user: CurrentUser, db: Db, request: Request) -> JsonResponse:
    removed = await execute(
        db.service.rpc("admin_delete_user", {"p_id": user_id}), audit_headers(request, user)
    )
    return JsonResponse(removed)


@router.post(
    "/invites",
    response_model=InviteCreated,
    status_code=201,
    responses=error_responses(400, 401, 403, 413, 500, 503),
    summary="A single-use invite code for REGISTRATION_MODE=invite, as scripts/users.py "
    "invite makes (admins only)",
)
async def create_invite(
    body: InviteCreate, user: CurrentUser, db: Db, settings: AppSettings, request: Request
) -> JsonResponse:
    code = new_secret()
    expires = now() + dt.timedelta(hours=body.hours or settings.invite_ttl_hours)
    invite = await execute(
        db.service.rpc(
            "admin_create_invite",
            {
                "p_code_sha256": sha256_hex(code),
                "p_expires_at": expires.isoformat(),
                "p_note": body.note,
            },
        ),
        audit_headers(request, user),
    )
    return JsonResponse(
        {
            "id": invite["id"],
            "code": code,
            "expires_at": invite["expires_at"],
            "note": invite["note"],
        },
        status_code=201,
    )
