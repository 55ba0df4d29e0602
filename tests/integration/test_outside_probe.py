"""Regression tests for what an outside attacker found (issue 15, findings 2 to 8).

Each test replays the attack on the real stack and asserts that it no longer works.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
import unicodedata
import uuid

import httpx
import pytest
from jose import jwt

from tests.helpers import app_client, count_rows, sql, stack_settings, token_for

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
TOO_MANY = {"error": "Too many attempts, please try again later"}


def secret() -> str:
    return os.environ["JWT_SECRET"]


def now() -> int:
    return int(time.time())


def signed(claims: dict) -> str:
    return jwt.encode(claims, secret(), algorithm="HS256")


def claims(**changes) -> dict:
    base = {
        "userId": 1,
        "name": "Alok",
        "email": "alok@example.com",
        "iat": now(),
        "exp": now() + 3600,
        "jti": uuid.uuid4().hex,
    }
    for key, value in changes.items():
        if value is ...:
            base.pop(key)
        else:
            base[key] = value
    return base


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ascii_json(body: dict) -> dict:
    """Request kwargs with the body as ASCII JSON: lone surrogates travel as \\udxxx escapes
    (httpx's own encoder writes UTF-8, which cannot hold them)."""
    return {"content": json.dumps(body).encode(), "headers": {"Content-Type": "application/json"}}


def wrong(account: str) -> dict:
    return {"email": account, "password": "wrong-password"}


# --------------------------------------------------------------------------------------
# 2. The login limit is one counter per account, whatever the spelling
# --------------------------------------------------------------------------------------
@pytest.fixture
async def limited_api(fresh_db):
    async with app_client(
        stack_settings(rate_limit_enabled=True, login_rate_limit="5/15minutes")
    ) as client:
        yield client


async def test_login_limit_counts_every_spelling_of_an_account_together(limited_api):
    # username, email, other cases and fullwidth letters all name Rashmi (user 4)
    for account in (
        "rashmi",
        "rashmi@example.com",
        "RASHMI",
        "Rashmi@Example.COM",
        "\uff52\uff41\uff53\uff48\uff4d\uff49",
    ):
        response = await limited_api.post("/api/auth/login", json=wrong(account))
        assert response.status_code == 401, (account, response.text)
    for account in ("rAsHmI", "rashmi"):
        blocked = await limited_api.post(
            "/api/auth/login", json={"email": account, "password": "password123"}
        )
        assert blocked.status_code == 429, (account, blocked.text)
        assert blocked.json() == TOO_MANY


async def test_dotted_capital_i_never_opens_a_fresh_counter_for_an_account(limited_api):
    # Postgres' lower('İ') and Python's differ: with the typed text as the key, every `i`
    # of a name doubled the guesses. Now a spelling either resolves to the account and
    # shares its counter, or it names no account and cannot log in at all.
    for _ in range(5):
        assert (await limited_api.post("/api/auth/login", json=wrong("rashmi"))).status_code == 401
    for account in ("rashm\u0130", "RASHM\u0130", "rashm\u0130@example.com", "Rashm\u0131"):
        response = await limited_api.post(
            "/api/auth/login", json={"email": account, "password": "password123"}
        )
        assert response.status_code in (401, 429), (account, response.text)
        assert "token" not in response.json()


async def test_unknown_account_spellings_share_one_canonical_counter(limited_api):
    spellings = ["nobody", "NOBODY", "\uff4e\uff4f\uff42\uff4f\uff44\uff59", "NoBody", "nobody"]
    for account in spellings:
        assert (await limited_api.post("/api/auth/login", json=wrong(account))).status_code == 401
    blocked = await limited_api.post("/api/auth/login", json=wrong("nObOdY"))
    assert blocked.status_code == 429 and blocked.json() == TOO_MANY


CANONICAL_SAMPLES = [
    "atul",
    "ATUL",
    "Atul@Example.COM",
    "\u0130",
    "at\u0130l",
    "\u0131",
    "Stra\u00dfe",
    "STRASSE",
    "\u1e9e",
    "\ufb01le",
    "\u212a",
    "\u03a3\u03c3\u03c2",
    "\uff41\uff54\uff55\uff4c",
    "\u00c5ngstr\u00f6m",
    "A\u030angstro\u0308m",
    "\u0149",
    "\u01f0",
    "\u1f88",
    "\u13a0\uab70",
    "\u2168",
    "\u00b5",
    "\u017f",
    "e\u0301",
    "\u00e9",
]


def python_canonical(text: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def test_login_canonical_form_is_the_same_in_postgres_and_python(fresh_db):
    import ratelimit

    samples = CANONICAL_SAMPLES + [
        chr(cp) for cp in range(0x20, 0x3000) if unicodedata.category(chr(cp)) not in ("Cs", "Cn")
    ]
    with sql(fresh_db) as cur:
        cur.execute("select s, public.login_canonical(s) from unnest(%s::text[]) as s", (samples,))
        in_sql = dict(cur.fetchall())
    mismatches = {
        s: (in_sql[s], python_canonical(s)) for s in samples if in_sql[s] != python_canonical(s)
    }
    assert not mismatches, list(mismatches.items())[:20]
    assert all(ratelimit.canonical_login(s) == python_canonical(s) for s in samples)


# --------------------------------------------------------------------------------------
# 3. The client address is the entry appended by the trusted proxy hops, never a spoof
# --------------------------------------------------------------------------------------
def post_login(base: str, account: str, forwarded: str | None) -> httpx.Response:
    headers = {"Connection": "close"}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    return httpx.post(f"{base}/api/auth/login", json=wrong(account), headers=headers, timeout=30)


def spoofs() -> list[str]:
    return [f"203.0.113.{i}" for i in range(1, 4)] + [
        "LIMITER/login/not-an-ip/with/slashes",
        "unknown",
        "::1",
        "1.2.3.4, 5.6.7.8",
    ]


def test_without_a_proxy_setting_x_forwarded_for_is_ignored(start_server, fresh_db):
    base = start_server(env={"RATE_LIMIT_ENABLED": "true"}, workers=1)
    statuses = [post_login(base, "alok", f).status_code for f in spoofs()]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}, statuses


def test_behind_one_hop_the_proxy_appended_address_decides(start_server, fresh_db):
    # Even with the README's old advice (FORWARDED_ALLOW_IPS=*) in the environment.
    base = start_server(
        env={"RATE_LIMIT_ENABLED": "true", "TRUSTED_PROXY_HOPS": "1", "FORWARDED_ALLOW_IPS": "*"},
        workers=1,
    )
    attacker = "198.51.100.7"
    statuses = [post_login(base, "alok", f"{spoof}, {attacker}").status_code for spoof in spoofs()]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}, statuses
    # Another real client (another proxy-appended address) has its own counter.
    assert post_login(base, "alok", f"{attacker}, 198.51.100.8").status_code == 401
    # A proxy-appended entry that is no IP address is not taken as a client.
    for _ in range(2):
        assert post_login(base, "alok", f"{attacker}, not-an-ip").status_code == 401
    assert post_login(base, "alok", "not-an-ip/with/slashes").status_code in (401, 429)


def test_behind_two_hops_the_outer_proxy_appended_address_decides(start_server, fresh_db):
    base = start_server(env={"RATE_LIMIT_ENABLED": "true", "TRUSTED_PROXY_HOPS": "2"}, workers=1)
    attacker, inner_proxy = "198.51.100.7", "10.0.0.2"
    statuses = [
        post_login(base, "alok", f"{spoof}, {attacker}, {inner_proxy}").status_code
        for spoof in spoofs()
    ]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}, statuses
    other = post_login(base, "alok", f"{attacker}, 198.51.100.9, {inner_proxy}")
    assert other.status_code == 401, other.text


# --------------------------------------------------------------------------------------
# 4. A logged-out legacy token stays logged out, whatever its encoding
# --------------------------------------------------------------------------------------
def legacy_token(iat_offset: int = 0) -> str:
    issued = now() - iat_offset
    return signed(
        {
            "userId": 2,
            "name": "Amol",
            "email": "amol@example.com",
            "iat": issued,
            "exp": issued + 24 * 3600,
        }
    )


def re_encodings(token: str) -> list[str]:
    """The same signature bytes, spelled differently in base64url."""
    head, payload, signature = token.split(".")
    last = ALPHABET.index(signature[-1])
    same_bytes = signature[:-1] + ALPHABET[last ^ 1]  # 43 chars: the last 2 bits are padding
    assert base64.urlsafe_b64decode(same_bytes + "=") == base64.urlsafe_b64decode(signature + "=")
    return [
        f"{head}.{payload}.{signature}=",
        f"{head}.{payload}.{same_bytes}",
        f"{head}.{payload}.{same_bytes}=",
    ]


async def test_logged_out_legacy_token_stays_refused_in_another_encoding(api, fresh_db):
    token = legacy_token(iat_offset=40)
    assert (await api.post("/api/auth/logout", headers=bearer(token))).status_code == 200
    for variant in re_encodings(token):
        response = await api.get("/api/auth/me", headers=bearer(variant))
        assert response.status_code == 401, (variant, response.text)
        assert response.json() == {"error": "Invalid or expired token"}


async def test_non_canonical_token_encodings_are_refused_before_anything_else(api, fresh_db):
    token = signed(claims())
    assert (await api.get("/api/auth/me", headers=bearer(token))).status_code == 200
    head, payload, signature = token.split(".")
    for variant in [
        *re_encodings(token),
        f"{head}=.{payload}.{signature}",
        f"{head}.{payload}.{signature[:10]}!{signature[10:]}",
    ]:
        response = await api.get("/api/auth/me", headers=bearer(variant))
        assert response.status_code == 401, (variant, response.text)


# --------------------------------------------------------------------------------------
# 5. Hostile claims and text are 400/401 {"error"}, before any expensive work
# --------------------------------------------------------------------------------------
@pytest.fixture
def bcrypt_calls(api, monkeypatch) -> list[str]:
    calls: list[str] = []
    from deps import app_state

    passwords = app_state(api.app).passwords
    original_hash, original_verify = passwords.hash, passwords.verify

    async def counted_hash(password):
        calls.append("hash")
        return await original_hash(password)

    async def counted_verify(password, password_hash):
        calls.append("verify")
        return await original_verify(password, password_hash)

    monkeypatch.setattr(passwords, "hash", counted_hash)
    monkeypatch.setattr(passwords, "verify", counted_verify)
    return calls


@pytest.mark.parametrize(
    "body",
    [
        {"username": "surrogate_pw", "password": "Str0ng!pass\ud800"},
        {"username": "surrogate_mail", "password": "Str0ng!pass", "email": "a\udfff@example.com"},
        {
            "username": "surrogate_both",
            "password": "\ud83dStr0ng!pass",
            "email": "b\ud800@example.com",
        },
    ],
    ids=["password", "email", "both"],
)
async def test_register_with_a_lone_surrogate_is_400_without_bcrypt(
    api, fresh_db, bcrypt_calls, body
):
    before = count_rows(fresh_db, "users")
    response = await api.post("/api/auth/register", **ascii_json(body))
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"}
    assert bcrypt_calls == []
    assert count_rows(fresh_db, "users") == before


@pytest.mark.parametrize(
    "body",
    [
        {"email": "alok\ud800@example.com", "password": "password123"},
        {"email": "alok@example.com", "password": "password123\udc00"},
    ],
    ids=["email", "password"],
)
async def test_login_with_a_lone_surrogate_is_400_without_bcrypt(api, fresh_db, bcrypt_calls, body):
    response = await api.post("/api/auth/login", **ascii_json(body))
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"}
    assert bcrypt_calls == []


async def test_expense_description_with_a_lone_surrogate_is_400(api, fresh_db, auth_headers):
    kwargs = ascii_json({"amount": 5, "category_id": 1, "description": "x\ud800y"})
    response = await api.post(
        "/api/expenses", content=kwargs["content"], headers={**auth_headers, **kwargs["headers"]}
    )
    assert response.status_code == 400, response.text
    assert count_rows(fresh_db, "expenses") == 0


HOSTILE_CLAIMS = (
    {
        "jti-crlf": claims(jti="abc\r\nX-Injected: 1"),
        "jti-lf": claims(jti="abc\ndef"),
        "jti-non-ascii": claims(jti="caf\u00e9-0123456789abcdef0123456789"),
        "jti-colon": claims(jti="0123456789abcdef:0123456789abcdef"),
        "jti-too-long": claims(jti="a" * 300),
        "jti-int": claims(jti=12345),
        "exp-string": claims(exp=str(now() + 3600)),
        "exp-1e30": claims(exp=1e30),
        "exp-huge-int": claims(exp=10**30),
        "exp-float": claims(exp=now() + 3600.5),
        "exp-bool": claims(exp=True),
        "iat-five-years-ahead": claims(iat=now() + 5 * 365 * 86400, exp=now() + 6 * 365 * 86400),
        "iat-one-hour-ahead": claims(iat=now() + 3600),
        "iat-string": claims(iat=str(now())),
        "iat-1e30": claims(iat=1e30),
        "user-id-huge": claims(userId=10**30),
    }
    if "JWT_SECRET" in os.environ
    else {}
)


@pytest.mark.parametrize("name", list(HOSTILE_CLAIMS))
async def test_tokens_with_hostile_claims_are_401(api, fresh_db, name):
    token = signed(HOSTILE_CLAIMS[name])
    for method, path in (
        ("GET", "/api/auth/me"),
        ("POST", "/api/auth/logout"),
        ("GET", "/api/expenses"),
        ("GET", "/api/dashboard/1/monthly"),
    ):
        response = await api.request(method, path, headers=bearer(token))
        assert response.status_code == 401, (name, path, response.status_code, response.text)
        assert response.json() == {"error": "Invalid or expired token"}
    assert count_rows(fresh_db, "revoked_tokens") == 0


async def test_iat_a_few_seconds_ahead_is_accepted_as_clock_skew(api, fresh_db):
    token = signed(claims(iat=now() + 20))
    assert (await api.get("/api/auth/me", headers=bearer(token))).status_code == 200


# --------------------------------------------------------------------------------------
# 6. No oracle through PostgREST: the anon key cannot probe sessions
# --------------------------------------------------------------------------------------
def rest_get(key: str, session: str) -> httpx.Response:
    return httpx.get(
        f"{os.environ['SUPABASE_URL']}/rest/v1/categories?select=id,name&order=id",
        headers={"apikey": key, "Authorization": f"Bearer {key}", "X-Gateway-Session": session},
        timeout=10,
    )


def test_anon_key_cannot_probe_user_ids_or_revoked_tokens_through_the_session_header(fresh_db):
    anon = os.environ["SUPABASE_ANON_KEY"]
    revoked = uuid.uuid4().hex
    with sql(fresh_db) as cur:
        cur.execute(
            "insert into public.revoked_tokens (jti, expires_at) "
            "values (%s, now() + interval '1 hour')",
            (revoked,),
        )
    answers = [
        rest_get(anon, session)
        for session in (
            "1:x",
            "999:x",
            f"1:{revoked}:{now()}",
            f"1:{uuid.uuid4().hex}:{now()}",
            f"999:{uuid.uuid4().hex}:{now()}",
            "garbage",
            "0:",
        )
    ]
    assert {(r.status_code, r.text) for r in answers} == {(answers[0].status_code, answers[0].text)}
    assert answers[0].status_code == 200, answers[0].text


def test_service_role_requests_still_check_the_session(fresh_db):
    service = os.environ["SUPABASE_SERVICE_ROLE_KEY"]
    assert rest_get(service, f"1:{uuid.uuid4().hex}:{now()}").status_code == 200
    assert rest_get(service, f"999:{uuid.uuid4().hex}:{now()}").status_code == 401
    assert rest_get(service, f"1:{uuid.uuid4().hex}:x:{now()}").status_code == 401
    assert rest_get(service, "1:x:y").status_code == 401


# --------------------------------------------------------------------------------------
# 7. Bookkeeping tables stay bounded under a stream of made-up requests
# --------------------------------------------------------------------------------------
async def test_rate_limit_rows_stay_bounded_under_made_up_logins(fresh_db):
    async with app_client(
        stack_settings(rate_limit_enabled=True, login_rate_limit="5/1second")
    ) as client:

        async def made_up(batch: int) -> None:
            for i in range(25):
                response = await client.post(
                    "/api/auth/login", json=wrong(f"ghost_{batch}_{i}@example.com")
                )
                assert response.status_code == 401

        await made_up(0)
        assert count_rows(fresh_db, "rate_limits") <= 25  # fewer if a slow batch outlived a window
        for batch in range(1, 4):
            await asyncio.sleep(1.2)  # every earlier window has expired
            await made_up(batch)
            assert count_rows(fresh_db, "rate_limits") <= 25 + 5, batch


async def test_expired_idempotency_keys_are_pruned_by_new_writes(api, fresh_db, auth_headers):
    with sql(fresh_db) as cur:
        cur.execute(
            "insert into public.idempotency_keys (user_id, key, request_hash, response, "
            "expires_at) select 1 + i % 4, 'old-' || i, 'h', 'null', "
            "now() - interval '1 hour' "
            "from generate_series(1, 60) as i"
        )
    for i in range(10):
        response = await api.post(
            "/api/expenses",
            json={"amount": 1, "category_id": 1},
            headers={**auth_headers, "Idempotency-Key": f"new-{i}"},
        )
        assert response.status_code == 201
    assert count_rows(fresh_db, "idempotency_keys") == 10


async def test_expired_revoked_tokens_are_pruned_by_logouts(api, fresh_db):
    with sql(fresh_db) as cur:
        cur.execute(
            "insert into public.revoked_tokens (jti, expires_at) select md5(i::text), "
            "now() - interval '1 hour' from generate_series(1, 60) as i"
        )
    for _ in range(3):
        response = await api.post("/api/auth/logout", headers=bearer(token_for()))
        assert response.status_code == 200
    assert count_rows(fresh_db, "revoked_tokens") == 3


# --------------------------------------------------------------------------------------
# 8. Exposure: server header, slow headers, canonical ids
# --------------------------------------------------------------------------------------
def test_procfile_server_sends_no_server_header(start_server, fresh_db):
    base = start_server(workers=1)
    for path in ("/health", "/api/categories", "/api/nowhere", "/api/auth/me"):
        response = httpx.get(base + path)
        assert "server" not in response.headers, (path, response.headers)


def test_slow_header_connection_is_closed_by_the_server(start_server, fresh_db):
    base = start_server(env={"HEADER_TIMEOUT_SECONDS": "2"}, workers=1)
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
        started = time.monotonic()
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        closed_after = None
        while time.monotonic() - started < 8:
            try:
                conn.sendall(b"X-Slow: 1\r\n")
                if conn.recv(1024) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                continue
            except OSError:
                closed_after = time.monotonic() - started
                break
        assert closed_after is not None, "a slow-header connection stayed open for 8 s"
        assert closed_after < 4, closed_after
    # The server still answers everyone else.
    assert httpx.get(base + "/health").status_code == 200


def test_idle_connection_without_a_request_is_closed(start_server, fresh_db):
    base = start_server(env={"HEADER_TIMEOUT_SECONDS": "2"}, workers=1)
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=6) as conn:
        started = time.monotonic()
        assert conn.recv(1024) == b""
        assert time.monotonic() - started < 4


NON_CANONICAL = ["01", "1.0", "+1", " 1", "1_0", "1%20", "%2B1", "1%2f..%2f2", "0x1", "1e0"]


@pytest.mark.parametrize("value", NON_CANONICAL)
async def test_ids_in_paths_accept_only_canonical_integers(api, fresh_db, auth_headers, value):
    for path in (f"/api/dashboard/{value}/monthly", f"/api/dashboard/{value}/yearly"):
        response = await api.get(path, headers=auth_headers)
        assert response.status_code in (400, 404), (path, response.status_code, response.text)
        assert set(response.json()) == {"error"}


def int_query_params() -> list[tuple[str, str]]:
    """Every integer query parameter of every GET route, from the app's OpenAPI document."""
    from main import create_app

    found = []
    for path, operations in create_app(stack_settings()).openapi()["paths"].items():
        for param in operations.get("get", {}).get("parameters", []):
            schemas = [param["schema"], *param["schema"].get("anyOf", [])]
            if param["in"] == "query" and any(s.get("type") == "integer" for s in schemas):
                found.append((path, param["name"]))
    return found


@pytest.mark.parametrize("value", ["01", "1.0", "+1", " 1", "1_0", "2025.0", "02025"])
async def test_integer_query_parameters_accept_only_canonical_integers(
    api, fresh_db, auth_headers, value
):
    params = int_query_params()
    assert {name for _, name in params} >= {
        "user_id",
        "category_id",
        "limit",
        "offset",
        "year",
        "month",
    }
    for path, name in params:
        url = path.replace("{user_id}", "1")
        response = await api.get(url, params={name: value}, headers=auth_headers)
        assert response.status_code == 400, (url, name, value, response.text)
        assert set(response.json()) == {"error"}
