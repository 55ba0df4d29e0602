"""Tokens (the `CurrentUser` dependency that uses them is in deps.py; passwords.py hashes).

Tokens are the legacy ones: HS256 with JWT_SECRET, claims {userId, name, email} plus exp
(24 h), iat and jti. Only HS256 is accepted. Tokens the legacy functions issued (no jti)
are accepted too, so nobody is logged out at the cut-over. Whether the user still exists and the token
was not logged out is checked by Postgres on the same round trip as the request's data
(see `session_headers` and sql/gateway_functions.sql: check_gateway_session).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from jose import JWTError, jwt

from config import Settings
from models import ApiError

ALGORITHM = "HS256"
COOKIE_NAME = "jwt"
TOKEN_INVALID = "Invalid or expired token"
TOKEN_MISSING = "Authentication required"
# Tokens the legacy functions issued carry {userId, name, email, iat, exp} but no jti; they
# stay valid across the cut-over (same JWT_SECRET), identified for logout by their hash.
REQUIRED_CLAIMS = {"require_exp": True, "require_iat": True}
LEGACY_JTI_PREFIX = "legacy-"


@dataclass(frozen=True)
class TokenUser:
    id: int
    name: str
    email: str | None
    jti: str
    expires_at: dt.datetime


def create_token(settings: Settings, user: dict[str, Any]) -> tuple[str, TokenUser]:
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    expires = now + dt.timedelta(hours=settings.jwt_expire_hours)
    claims = {"userId": user["id"], "name": user["name"], "email": user.get("email"),
              "iat": int(now.timestamp()), "exp": int(expires.timestamp()),
              "jti": uuid.uuid4().hex}
    token = jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)
    return token, TokenUser(user["id"], user["name"], user.get("email"), claims["jti"], expires)


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


def _decode_token(settings: Settings, token: str) -> TokenUser:
    try:
        if jwt.get_unverified_header(token).get("alg") != ALGORITHM:
            raise ApiError(401, TOKEN_INVALID)
        claims = jwt.decode(token, settings.jwt_secret.get_secret_value(),
                            algorithms=[ALGORITHM], options=REQUIRED_CLAIMS)
    except JWTError:
        raise ApiError(401, TOKEN_INVALID) from None
    user_id, name, jti = claims.get("userId"), claims.get("name"), claims.get("jti")
    if "jti" not in claims:
        jti = LEGACY_JTI_PREFIX + hashlib.sha256(token.encode()).hexdigest()[:40]
    if (not isinstance(user_id, int) or isinstance(user_id, bool) or user_id < 1
            or not isinstance(name, str) or not isinstance(jti, str) or not jti):
        raise ApiError(401, TOKEN_INVALID)
    email = claims.get("email")
    expires = dt.datetime.fromtimestamp(claims["exp"], dt.timezone.utc)
    return TokenUser(user_id, name, email if isinstance(email, str) else None, jti, expires)


def token_from_request(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None
    return request.cookies.get(COOKIE_NAME) or None


def session_headers(user: TokenUser) -> dict[str, str]:
    """Names the caller's session to Postgres' pre-request check (one round trip)."""
    return {"X-Gateway-Session": f"{user.id}:{user.jti}"}
