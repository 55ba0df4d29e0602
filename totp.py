"""TOTP (RFC 6238) with pyotp: 6 digits, 30-second steps, one step of clock drift either way.

pyotp checks a code; which time step it matched is what makes a code single-use: Postgres
accepts a step only above the last one accepted for the user (users.totp_last_step,
sql/R31_auth_sessions.sql record_login, sql/R32_accounts.sql totp_enable/totp_disable),
in the same transaction as the login or change, so a code replayed (or raced) is refused.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re

import pyotp

ISSUER = "Family Finance"
CODE_RE = re.compile(r"[0-9]{6}")
DRIFT_STEPS = 1


def new_secret() -> str:
    return pyotp.random_base32()  # 32 base32 characters: 160 bits


def provisioning_uri(secret: str, account: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def matching_step(secret: str, code: str, now: dt.datetime | None = None) -> int | None:
    """The time step (unix time // 30) whose code equals `code`, within the drift; None if
    no step matches. Postgres decides whether that step was already used."""
    if not CODE_RE.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret)
    moment = now or dt.datetime.now(dt.timezone.utc)
    current = totp.timecode(moment)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None
