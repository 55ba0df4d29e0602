"""Tokens (the `CurrentUser` dependency that uses them is in deps.py; passwords.py hashes).

Tokens are the legacy ones: HS256 with JWT_SECRET, claims {userId, name, email} plus exp
(24 h), iat and jti. Only HS256 is accepted. Tokens the legacy functions issued (no jti)
are accepted too, so nobody is logged out at the cut-over. Whether the user still exists and the token
was not logged out is checked by Postgres on the same round trip as the request's data
(see `session_headers` and sql/R31_auth_sessions.sql: the pre-request hook
check_gateway_session, and require_gateway_session in every function called with a
session, so that it holds without the hook; readiness.py proves it and fails closed).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from jose import JWTError, jwt
from starlette.responses import Response
from typing_extensions import TypeIs  # Python 3.13 has it in typing

from config import Settings
from errors import ApiError

ALGORITHM = "HS256"
COOKIE_NAME = "jwt"
TOKEN_INVALID = "Invalid or expired token"
TOKEN_MISSING = "Authentication required"
# Tokens the legacy functions issued carry {userId, name, email, iat, exp} but no jti; they
# stay valid across the cut-over (same JWT_SECRET), identified for logout by their hash.
REQUIRED_CLAIMS = {"require_exp": True, "require_iat": True}
LEGACY_JTI_PREFIX = "legacy-"
# The one jti format: what create_token issues (uuid4 hex). The session header and the
# revocation table carry nothing else (see check_gateway_session in sql/R31_auth_sessions.sql).
JTI_RE = re.compile(r"[0-9a-f]{32}")
# A token's iat may be this far in the future (clock skew between issuers), no further.
IAT_LEEWAY_SECONDS = 60
MAX_TIMESTAMP = 10**10  # year 2286: exp/iat beyond it are not times but attacks
MAX_USER_ID = 2**53 - 1
SEGMENT_RE = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class TokenUser:
    id: int
    name: str
    email: str | None
    jti: str
    expires_at: dt.datetime
    issued_at: int = 0  # iat: refused when at or before the user's sessions_revoked_at


def create_token(
    settings: Settings,
    user: dict[str, Any],
    *,
    jti: str | None = None,
    lifetime: dt.timedelta | None = None,
) -> tuple[str, TokenUser]:
    """A token with the legacy claims. Its jti names its session (public.sessions.id): a
    login's token is its session; the access tokens of /api/auth/token and /refresh share
    their session's id (`jti`) and live `lifetime` (ACCESS_TOKEN_MINUTES)."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    expires = now + (lifetime or dt.timedelta(hours=settings.jwt_expire_hours))
    claims = {
        "userId": user["id"],
        "name": user["name"],
        "email": user.get("email"),
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": jti or uuid.uuid4().hex,
    }
    token = jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)
    return token, TokenUser(
        user["id"], user["name"], user.get("email"), claims["jti"], expires, claims["iat"]
    )


# Verified tokens per worker: (secret, token) -> user. A browser sends the same token on
# every call, and python-jose's verification is a large share of a proxied request's CPU.
# Only the signature check is remembered; expiry is checked on every hit, and revocation
# and user existence are checked by Postgres on every request (session_headers).
_verified: dict[tuple[str, str], TokenUser] = {}
VERIFIED_CACHE_SIZE = 4096


def decode_token(settings: Settings, token: str) -> TokenUser:
    """Verify signature, algorithm, expiry and our claims; any failure is a 401."""
    key = (settings.jwt_secret.get_secret_value(), token)
    user = _verified.get(key)
    if user is not None:
        if user.expires_at.timestamp() < int(time.time()):  # python-jose's rule for `exp`
            _verified.pop(key, None)
            raise ApiError(401, TOKEN_INVALID)
        return user
    user = _decode_token(settings, token)
    if len(_verified) >= VERIFIED_CACHE_SIZE:
        _verified.clear()
    _verified[key] = user
    return user


def is_canonical(token: str) -> bool:
    """Three unpadded base64url segments, each the only spelling of its bytes.

    python-jose also accepts a trailing `=` and a last character whose unused low bits
    differ: the same signature in another text. A legacy token's revocation is keyed on
    its text, so such a variant of a logged-out token would work again; refusing every
    non-canonical spelling first closes that (and keeps the keys of stored revocations)."""
    segments = token.split(".")
    if len(segments) != 3:
        return False
    for segment in segments:
        if not SEGMENT_RE.fullmatch(segment) or len(segment) % 4 == 1:
            return False
        try:
            decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        except (binascii.Error, ValueError):
            return False
        if base64.urlsafe_b64encode(decoded).rstrip(b"=").decode() != segment:
            return False
    return True


def _is_time(value: object) -> TypeIs[int]:
    return type(value) is int and 0 <= value < MAX_TIMESTAMP


def _decode_token(settings: Settings, token: str) -> TokenUser:
    if not is_canonical(token):
        raise ApiError(401, TOKEN_INVALID)
    try:
        if jwt.get_unverified_header(token).get("alg") != ALGORITHM:
            raise ApiError(401, TOKEN_INVALID)
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[ALGORITHM],
            options=REQUIRED_CLAIMS,
        )
    except JWTError:
        raise ApiError(401, TOKEN_INVALID) from None
    user_id, name, jti = claims.get("userId"), claims.get("name"), claims.get("jti")
    issued_at, expires_at = claims.get("iat"), claims.get("exp")
    if "jti" not in claims:
        jti = LEGACY_JTI_PREFIX + hashlib.sha256(token.encode()).hexdigest()[:40]
    elif not isinstance(jti, str) or not JTI_RE.fullmatch(jti):
        raise ApiError(401, TOKEN_INVALID)
    if (
        type(user_id) is not int
        or not 1 <= user_id <= MAX_USER_ID
        or not isinstance(name, str)
        or not _is_time(issued_at)
        or not _is_time(expires_at)
        or issued_at > time.time() + IAT_LEEWAY_SECONDS
    ):
        raise ApiError(401, TOKEN_INVALID)
    email = claims.get("email")
    expires = dt.datetime.fromtimestamp(expires_at, dt.timezone.utc)
    return TokenUser(
        user_id, name, email if isinstance(email, str) else None, jti, expires, issued_at
    )


def token_from_request(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None
    return request.cookies.get(COOKIE_NAME) or None


def set_session_cookie(response: Response, settings: Settings, token: str) -> None:
    """The legacy httpOnly `jwt` cookie; COOKIE_SAMESITE / COOKIE_DOMAIN fit it to the
    deployment (SameSite=None, for a frontend on another site, always goes with Secure)."""
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=settings.jwt_expire_hours * 3600,
        httponly=True,
        samesite=settings.cookie_samesite,
        secure=settings.cookie_secure,
        domain=settings.cookie_domain,
        path="/",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    """Same attributes as when it was set: a browser only replaces a cookie whose domain and
    path match."""
    response.delete_cookie(
        COOKIE_NAME,
        path="/",
        domain=settings.cookie_domain,
        httponly=True,
        samesite=settings.cookie_samesite,
        secure=settings.cookie_secure,
    )


def new_session_id() -> str:
    return uuid.uuid4().hex


def new_secret() -> str:
    """A refresh token, reset code or invite code: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def sha256_hex(value: str) -> str:
    """How refresh tokens, reset codes and invites are stored: only this."""
    return hashlib.sha256(value.encode()).hexdigest()


def session_headers(user: TokenUser) -> dict[str, str]:
    """Names the caller's session to Postgres' pre-request check (one round trip):
    user id, token id and issue time (for scripts/users.py revoke-sessions)."""
    return {"X-Gateway-Session": f"{user.id}:{user.jti}:{user.issued_at}"}


def audit_headers(request: Request, user: TokenUser | None = None) -> dict[str, str]:
    """session_headers plus what Postgres writes into audit_log in the same transaction as
    a change: this request's id and the end user's address (sql/R20_audit.sql)."""
    headers = session_headers(user) if user is not None else {}
    headers["X-Request-ID"] = getattr(request.state, "request_id", "") or ""
    headers["X-Client-Address"] = request.client.host if request.client else ""
    return headers
