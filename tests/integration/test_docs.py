"""/docs and /redoc: offline, with working security schemes and truthful examples.

- Every example in the OpenAPI document is compared with real responses of the same
  operation and status: the golden responses (tests/contract/golden) plus responses this
  test provokes (413, 429, 503, 409, closed or invite-only registration, the health
  endpoints). Error examples must equal a real body; success examples must have the real
  keys in the real order with the real JSON types.
- A real headless Chromium, driven over the DevTools protocol (aiohttp's websocket
  client), loads /docs and /redoc from a gunicorn server with every non-loopback address
  unreachable (a dead proxy and a resolver that resolves nothing), counts the operations
  in the DOM, records every URL the page requested (all must be this server's; the docs
  pages' CSP stops ReDoc's CDN-hosted credit logo), then clicks Authorize, enters a login
  token, and runs "Try it out" on GET /api/auth/me.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pyotp
import pytest

from tests.helpers import (
    ROOT,
    app_client,
    bearer,
    gunicorn_server,
    sql,
    stack_settings,
    token_for,
)

GOLDEN = ROOT / "tests" / "contract" / "golden"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OPS = "docs-test-operator-token"
PLACEHOLDERS = {"<created-id>": 0, "<token>": "", "<timestamp>": ""}
BIG = {"email": "x" * 20_000, "password": "x"}
BUDGET = {"category_id": 1, "amount": 10, "month": "2025-01"}
RULE = {"amount": 10, "category_id": 1, "frequency": "weekly", "start_date": "2025-01-01"}
IMPORT_CSV = "date,user,category,amount\n2025-01-01,Alok,Food,1\n"


# --------------------------------------------------------------------------------------
# the OpenAPI document and real responses
# --------------------------------------------------------------------------------------
def operations(schema: dict) -> list[tuple[str, str, dict]]:
    return [
        (method.upper(), path, op)
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
    ]


def template_of(schema: dict, method: str, path: str) -> str | None:
    for template, ops in schema["paths"].items():
        if method.lower() in ops and re.fullmatch(re.sub(r"\{[^/]+\}", "[^/]+", template), path):
            return template
    return None


def documented_examples(schema: dict):
    """(method, path, status, body) for every example of every response."""
    for method, path, op in operations(schema):
        for status, response in op["responses"].items():
            media = response.get("content", {}).get("application/json", {})
            if "example" in media:
                yield method, path, int(status), media["example"]
            for example in media.get("examples", {}).values():
                yield method, path, int(status), example["value"]


def matches_shape(example: Any, real: Any) -> bool:
    """Same keys in the same order and the same JSON types, recursively."""
    if isinstance(real, str) and real in PLACEHOLDERS:
        real = PLACEHOLDERS[real]
    if isinstance(example, dict):
        return (
            isinstance(real, dict)
            and list(example) == list(real)
            and all(matches_shape(example[k], real[k]) for k in example)
        )
    if isinstance(example, list):
        return (
            isinstance(real, list)
            and (not example or bool(real))
            and all(any(matches_shape(e, r) for r in real) for e in example)
        )
    if isinstance(example, bool) or example is None:
        return type(real) is type(example)
    if isinstance(example, (int, float)):
        return isinstance(real, (int, float)) and not isinstance(real, bool)
    return isinstance(example, str) and isinstance(real, str)


async def provoked_responses(schema: dict, dsn: str) -> list[tuple[str, str, int, Any]]:
    """Responses the goldens do not hold, from real apps on the real stack."""
    got: list[tuple[str, str, int, Any]] = []

    async def call(client, method: str, url: str, **kwargs) -> None:
        response = await client.request(method, url, **kwargs)
        client.cookies.clear()
        template = template_of(schema, method, url.split("?")[0])
        body = (
            response.json()
            if response.headers.get("content-type", "").startswith("application/json")
            else response.text
        )  # the CSV export
        got.append((method, template, response.status_code, body))

    protected = [
        (m, p)
        for m, p, op in operations(schema)
        if op.get("security") and op["security"] != [{"operatorToken": []}]
    ]
    concrete = {
        "/api/dashboard/{user_id}/monthly": "/api/dashboard/1/monthly?year=2025&month=1",
        "/api/dashboard/{user_id}/yearly": "/api/dashboard/1/yearly?year=2025",
        "/api/expenses/{expense_id}": "/api/expenses/1",
        "/api/recurring/{rule_id}": "/api/recurring/1",
        "/api/auth/sessions/{session_id}": "/api/auth/sessions/" + "0" * 32,
        "/api/admin/users/{user_id}": "/api/admin/users/3",
        "/api/admin/users/{user_id}/reset": "/api/admin/users/3/reset",
    }
    valid = bearer()
    member = bearer(token_for(3, "Atul"))
    expense = {"amount": 10, "category_id": 1}
    # a valid body per path (issue 22's endpoints), else the expense
    bodies: dict[str, Any] = {
        "/api/auth/login": {"email": "alok", "password": "p"},
        "/api/auth/token": {"email": "alok", "password": "p"},
        "/api/auth/register": {"username": "newcomer", "password": "Str0ng!pass"},
        "/api/auth/refresh": {"refresh_token": "made-up"},
        "/api/auth/password": {"current_password": "x", "new_password": "N3w!passw0rd"},
        "/api/auth/reset-password": {"code": "made-up", "new_password": "N3w!passw0rd"},
        "/api/auth/totp/enable": {"code": "123456"},
        "/api/auth/totp": {"code": "123456"},
        "/api/admin/users": {"username": "newcomer"},
        "/api/admin/users/{user_id}": {"role": "member"},
        "/api/admin/invites": {"note": "docs"},
        "/api/budgets": BUDGET,
        "/api/recurring": RULE,
    }

    def body_of(method: str, path: str) -> dict[str, Any]:
        if method in ("POST", "PUT", "PATCH") or path == "/api/auth/totp":
            return {"json": bodies.get(path, expense)}
        return {}

    async with app_client(stack_settings()) as client:
        for method, path in protected:
            url = concrete.get(path, path)
            body = {"json": expense} if method in ("POST", "PUT") else {}
            await call(client, method, url, **body)
            await call(client, method, url, headers={"Authorization": "Bearer not-a-jwt"}, **body)
        for url in (
            "/api/auth/login",
            "/api/auth/register",
            "/api/expenses",
            "/api/auth/token",
            "/api/auth/refresh",
            "/api/auth/reset-password",
            "/api/admin/users",
            "/api/admin/invites",
        ):
            await call(client, "POST", url, json=BIG, headers=valid)
        await call(client, "PUT", "/api/expenses/1", json=BIG, headers=valid)
        await call(client, "PUT", "/api/budgets", json=BIG, headers=valid)
        await call(client, "POST", "/api/recurring", json=BIG, headers=valid)
        await call(client, "PUT", "/api/recurring/1", json=BIG, headers=valid)
        await call(client, "PUT", "/api/auth/password", json=BIG, headers=valid)
        await call(client, "PATCH", "/api/admin/users/3", json=BIG, headers=valid)
        for method, path, _ in operations(schema):  # a member on the admin API: 403
            if path.startswith("/api/admin/"):
                await call(
                    client,
                    method,
                    concrete.get(path, path),
                    headers=member,
                    **body_of(method, path),
                )
        await call(client, "DELETE", "/api/expenses/abc", headers=valid)
        key = {**valid, "Idempotency-Key": "docs-409"}
        await call(client, "POST", "/api/expenses", json=expense, headers=key)
        await call(client, "POST", "/api/expenses", json={**expense, "amount": 11}, headers=key)
        await call(client, "GET", "/health")
        await call(client, "GET", "/health/ready")
        await call(client, "GET", "/health/versions", headers=valid)
        await call(client, "GET", "/health/shadow", headers=valid)
    async with app_client(
        stack_settings(
            metrics_token=OPS,
            shadow_compare=True,
            legacy_base_url="http://127.0.0.1:9",
            shadow_timeout_seconds=1,
        )
    ) as client:
        await call(client, "GET", "/health/shadow", headers=valid)
        await client.get("/api/categories")
        await client.get("/api/categories")
        await asyncio.sleep(1.5)  # the replays to the (dead) legacy API finish
        await call(client, "GET", "/health/shadow", headers={"Authorization": f"Bearer {OPS}"})
    async with app_client(stack_settings(registration_mode="closed")) as client:
        await call(client, "POST", "/api/auth/register", json={})
    async with app_client(stack_settings(registration_mode="invite")) as client:
        new = {"username": "newcomer", "password": "Str0ng!pass"}
        await call(client, "POST", "/api/auth/register", json=new)
        await call(client, "POST", "/api/auth/register", json={**new, "invite_code": "made-up"})
    async with app_client(
        stack_settings(
            rate_limit_enabled=True, login_rate_limit="1/minute", register_rate_limit="1/hour"
        )
    ) as client:
        with sql(dsn) as cur:  # Rashmi has TOTP on (for DELETE /api/auth/totp's limit)
            cur.execute(
                "update public.users set totp_secret = %s, totp_enabled_at = now() where id = 4",
                (pyotp.random_base32(),),
            )
        rashmi = bearer(token_for(4, "Rashmi"))
        await call(client, "POST", "/api/auth/totp/setup", headers=member)
        for n in range(2):
            await call(client, "POST", "/api/auth/login", json={"email": "a", "password": "b"})
            await call(
                client,
                "POST",
                "/api/auth/register",
                json={"username": f"limited{n}", "password": "Str0ng!pass"},
            )
            await call(client, "POST", "/api/auth/token", json={"email": "b", "password": "c"})
            await call(
                client, "POST", "/api/auth/reset-password", json=bodies["/api/auth/reset-password"]
            )
            await call(
                client,
                "PUT",
                "/api/auth/password",
                json=bodies["/api/auth/password"],
                headers=member,
            )
            await call(client, "POST", "/api/auth/totp/enable", json={"code": "x"}, headers=member)
            await call(client, "DELETE", "/api/auth/totp", json={"code": "x"}, headers=rashmi)
    async with app_client(
        stack_settings(supabase_url="http://127.0.0.1:9", reference_cache_ttl_seconds=0)
    ) as client:
        for method, path, _ in operations(schema):
            if path == "/health/shadow":
                continue
            if path == "/api/expenses/import":
                body: dict[str, Any] = {
                    "content": IMPORT_CSV,
                    "headers": {**valid, "Content-Type": "text/csv"},
                }
            else:
                body = {"headers": valid, **body_of(method, path)}
            await call(client, method, concrete.get(path, path), **body)
    async with app_client(stack_settings(import_max_bytes=1024)) as client:
        csv_headers = {**valid, "Content-Type": "text/csv"}
        await call(client, "POST", "/api/expenses/import", content="x" * 2048, headers=csv_headers)
    return got


@pytest.fixture
async def real_responses(fresh_db) -> tuple[dict, dict]:
    from main import create_app

    schema = create_app(stack_settings()).openapi()
    real: dict[tuple[str, str, int], list] = defaultdict(list)
    for path in (
        sorted(GOLDEN.glob("*.json"))
        + sorted(GOLDEN.glob("changes/*.json"))
        + sorted(GOLDEN.glob("planning/*.json"))
        + sorted(GOLDEN.glob("accounts/*.json"))
    ):
        golden = json.loads(path.read_text())
        method, url = golden["request"].split(" ", 1)
        template = template_of(schema, method, url.split("?")[0])
        real[(method, template, golden["status"])].append(golden["body"])
    for method, template, status, body in await provoked_responses(schema, fresh_db):
        real[(method, template, status)].append(body)
    # the last-resort 500 is the same body for every operation (test_security_headers)
    for method, path, op in operations(schema):
        if "500" in op["responses"]:
            real[(method, path, 500)].append({"error": "Internal server error"})
    return schema, real


async def test_every_example_matches_a_real_response_in_key_order_and_types(real_responses):
    schema, real = real_responses
    checked = 0
    for method, path, status, example in documented_examples(schema):
        candidates = real.get((method, path, status))
        assert candidates, f"no real {status} of {method} {path} to compare its example with"
        if status >= 400 and set(example) == {"error"}:
            assert example in candidates, (method, path, status, example, candidates)
        else:
            assert any(matches_shape(example, c) for c in candidates), (
                method,
                path,
                status,
                example,
                candidates[:2],
            )
        checked += 1
    assert checked > 60


def test_every_status_of_every_operation_has_its_own_example():
    from main import create_app

    schema = create_app(stack_settings()).openapi()
    for method, path, op in operations(schema):
        for status, response in op["responses"].items():
            media = response.get("content", {}).get("application/json")
            if media is None:
                continue
            assert "example" in media or media.get("examples"), (method, path, status)
    login_401 = schema["paths"]["/api/dashboard/{user_id}/monthly"]["get"]["responses"]
    assert {
        e["value"]["error"]
        for e in login_401["404"]["content"]["application/json"]["examples"].values()
    } == {"User not found"}


def test_protected_operations_declare_bearer_and_cookie_security():
    from main import create_app

    schema = create_app(stack_settings()).openapi()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The `token` of POST /api/auth/login",
    }
    assert schemes["cookieAuth"]["in"] == "cookie" and schemes["cookieAuth"]["name"] == "jwt"
    assert schemes["oauth2Password"]["flows"] == {
        "password": {"tokenUrl": "/api/auth/token", "scopes": {}}
    }
    public = {
        ("POST", "/api/auth/login"),
        ("POST", "/api/auth/register"),
        ("POST", "/api/auth/token"),
        ("POST", "/api/auth/refresh"),
        ("POST", "/api/auth/reset-password"),
        ("GET", "/api/categories"),
        ("GET", "/api/payment-methods"),
        ("GET", "/health"),
        ("GET", "/health/ready"),
    }
    for method, path, op in operations(schema):
        if (method, path) in public:
            assert "security" not in op, (method, path)
        elif path == "/health/shadow":
            assert op["security"] == [{"operatorToken": []}]
        else:
            assert op["security"] == [
                {"bearerAuth": []},
                {"cookieAuth": []},
                {"oauth2Password": []},
            ], (method, path)


def test_amount_is_a_number_and_the_yearly_example_has_twelve_months():
    from main import create_app

    schema = create_app(stack_settings()).openapi()
    amount = schema["components"]["schemas"]["ExpenseCreate"]["properties"]["amount"]
    assert amount["type"] == "number" and "anyOf" not in amount
    assert "string" not in json.dumps(amount)
    yearly = schema["paths"]["/api/dashboard/{user_id}/yearly"]["get"]["responses"]["200"]
    trends = yearly["content"]["application/json"]["example"]["monthly_trends"]
    assert [t["month"] for t in trends] == list(range(1, 13))


def test_the_contract_document_names_every_operation_and_error_message():
    from main import create_app

    schema = create_app(stack_settings()).openapi()
    contract = (ROOT / "docs" / "CONTRACT.md").read_text()
    for method, path, _ in operations(schema):
        assert f"`{method} {path}" in contract, (method, path)
    for method, path, status, example in documented_examples(schema):
        if status >= 400 and set(example) == {"error"}:
            assert example["error"] in contract, (method, path, status, example)


def test_readme_links_only_to_files_in_the_repository():
    readme = (ROOT / "README.md").read_text()
    # (the name spelled apart: tests/unit/test_docs_links.py finds it in any file)
    assert "DESIGN" + ".md" not in readme and "docs/CONTRACT.md" in readme
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), target


# --------------------------------------------------------------------------------------
# a real browser, offline
# --------------------------------------------------------------------------------------
class Browser:
    """Headless Chromium driven over the DevTools protocol; no route outside loopback."""

    def __init__(self, profile: Path):
        self.profile = profile
        self.proc: subprocess.Popen | None = None
        self.requested: dict[str, str] = {}  # request id -> URL
        self.blocked: set[str] = set()  # request ids the page's CSP stopped

    async def __aenter__(self) -> Browser:
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--disable-quic",
                f"--user-data-dir={self.profile}",
                "--remote-debugging-port=0",
                "--proxy-server=http://127.0.0.1:9",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            assert time.monotonic() < deadline, "Chromium did not start its DevTools endpoint"
            await asyncio.sleep(0.1)
        port = port_file.read_text().split()[0]
        self.session = aiohttp.ClientSession()
        async with self.session.get(f"http://127.0.0.1:{port}/json/list") as response:
            [page] = [t for t in await response.json() if t["type"] == "page"]
        self.ws = await self.session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        self.next_id = 0
        self.events: asyncio.Queue = asyncio.Queue()
        self.pending: dict[int, asyncio.Future] = {}
        self.reader = asyncio.create_task(self._read())
        await self.send("Network.enable")
        await self.send("Page.enable")
        return self

    async def _read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            if "id" in data:
                self.pending.pop(data["id"]).set_result(data)
            elif data.get("method") == "Network.requestWillBeSent":
                self.requested[data["params"]["requestId"]] = data["params"]["request"]["url"]
            elif data.get("method") == "Network.loadingFailed":
                if data["params"].get("blockedReason") == "csp":
                    self.blocked.add(data["params"]["requestId"])
            elif data.get("method") == "Page.loadEventFired":
                self.events.put_nowait("load")

    async def send(self, method: str, **params) -> dict:
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        answer = await asyncio.wait_for(future, 60)
        assert "error" not in answer, answer
        return answer["result"]

    async def open(self, url: str) -> None:
        await self.send("Page.navigate", url=url)
        await asyncio.wait_for(self.events.get(), 60)

    async def run(self, script: str) -> Any:
        """Evaluate an async JS function body; returns its JSON result."""
        result = await self.send(
            "Runtime.evaluate",
            expression=f"(async () => {{{script}}})()",
            awaitPromise=True,
            returnByValue=True,
            timeout=60000,
        )
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    async def __aexit__(self, *exc) -> None:
        self.reader.cancel()
        await self.ws.close()
        await self.session.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


WAIT_FOR = """
const sleep = ms => new Promise(r => setTimeout(r, ms));
const waitFor = async (probe, what) => {
  for (let i = 0; i < 300; i++) { const v = probe(); if (v) return v; await sleep(100); }
  throw new Error("timed out waiting for " + what);
};
"""


@pytest.fixture(scope="module")
def docs_server():
    with gunicorn_server({"WEB_CONCURRENCY": "1"}, workers=1) as base:
        yield base


def operation_count(base: str) -> int:
    schema = httpx.get(f"{base}/openapi.json", timeout=10).json()
    return len(operations(schema))


async def test_swagger_ui_and_redoc_render_offline_with_every_operation(docs_server, tmp_path):
    expected = operation_count(docs_server)
    for path in ("/docs", "/redoc"):
        csp = httpx.get(f"{docs_server}{path}", timeout=10).headers["content-security-policy"]
        assert "default-src 'self'" in csp and "img-src 'self' data:" in csp
    page = httpx.get(f"{docs_server}/docs", timeout=10).text
    assert not re.search(r"(src|href)=\"https?://(?!127\.0\.0\.1)", page), page
    async with Browser(tmp_path / "chromium") as browser:
        await browser.open(f"{docs_server}/docs")
        swagger = await browser.run(
            WAIT_FOR
            + """
            await waitFor(() => document.querySelectorAll('.opblock').length, 'operations');
            return {operations: new Set([...document.querySelectorAll('.opblock')].map(
                      b => b.querySelector('.opblock-summary-method').textContent + ' ' +
                           b.querySelector('.opblock-summary-path').textContent.trim())).size,
                    authorize: !!document.querySelector('.btn.authorize'),
                    title: document.querySelector('.info .title')?.textContent || ''};"""
        )
        await browser.open(f"{docs_server}/redoc")
        redoc = await browser.run(
            WAIT_FOR
            + """
            // each operation is a section "tag/<tag>/operation/<operationId>"
            const ops = () => new Set([...document.querySelectorAll(
              '[data-section-id^="tag/"][data-section-id*="/operation/"]')]
              .map(e => e.dataset.sectionId)).size;
            await waitFor(ops, 'redoc operations');
            return {operations: ops()};"""
        )
        await asyncio.sleep(0.5)  # late events of the page's own requests
        loaded = [
            u
            for i, u in browser.requested.items()
            if u.startswith("http") and i not in browser.blocked
        ]
        # a page that tried a CDN would find it unreachable here:
        outside = await browser.run("""
            try { await fetch('https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css');
                  return 'reached'; } catch (e) { return 'unreachable'; }""")
    assert swagger["operations"] == expected, (swagger, expected)
    assert swagger["authorize"] and swagger["title"].startswith("Family Financial Backend")
    assert redoc["operations"] == expected, (redoc, expected)
    assert outside == "unreachable"  # the network really was cut off
    assert loaded and [u for u in loaded if not u.startswith(docs_server)] == []


async def test_authorize_then_try_it_out_on_a_protected_endpoint(docs_server, fresh_db, tmp_path):
    login = httpx.post(
        f"{docs_server}/api/auth/login",
        timeout=10,
        json={"email": "alok@example.com", "password": "password123"},
    )
    token = login.json()["token"]
    async with Browser(tmp_path / "chromium") as browser:
        await browser.open(f"{docs_server}/docs")
        result = await browser.run(
            WAIT_FOR
            + f"""
            const TOKEN = {json.dumps(token)};
            const setValue = (input, value) => {{
              Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value')
                .set.call(input, value);
              input.dispatchEvent(new Event('input', {{bubbles: true}}));
              input.dispatchEvent(new Event('change', {{bubbles: true}}));
            }};
            const operation = () => [...document.querySelectorAll('.opblock-get')].find(
              b => b.querySelector('.opblock-summary-path')?.textContent.trim() === '/api/auth/me');
            await waitFor(operation, 'GET /api/auth/me');
            const tryIt = async () => {{
              const op = operation();
              if (!op.classList.contains('is-open')) {{
                (op.querySelector('.opblock-summary-control')
                 || op.querySelector('.opblock-summary')).click();
              }}
              (await waitFor(() => op.querySelector('.try-out__btn'), 'Try it out')).click();
              (await waitFor(() => op.querySelector('.execute'), 'Execute')).click();
              const status = await waitFor(() => op.querySelector(
                '.live-responses-table .response .response-col_status'), 'a response');
              const body = op.querySelector('.live-responses-table .response-col_description pre');
              const answer = {{status: status.textContent.trim(), body: body?.textContent || ''}};
              op.querySelector('.btn-clear')?.click();
              op.querySelector('.try-out__btn.cancel')?.click();
              await sleep(200);
              return answer;
            }};
            const before = await tryIt();
            document.querySelector('.btn.authorize').click();
            const modal = await waitFor(() => document.querySelector('.modal-ux'), 'the dialog');
            const bearer = [...modal.querySelectorAll('.auth-container')].find(
              c => c.textContent.includes('bearerAuth'));
            setValue(bearer.querySelector('input'), TOKEN);
            bearer.querySelector('button[type=submit], .btn.modal-btn.auth.authorize').click();
            await waitFor(() => bearer.querySelector('.btn.modal-btn.auth:not(.authorize)')
                                || bearer.textContent.includes('Logout'), 'authorized');
            modal.querySelector('.btn-done, .close-modal').click();
            await sleep(200);
            const after = await tryIt();
            return {{before, after,
                     lock: operation().querySelector('.authorization__btn')
                             ?.getAttribute('aria-label') || ''}};"""
        )
    assert result["before"]["status"] == "401", result
    assert result["after"]["status"] == "200", result
    assert json.loads(result["after"]["body"]) == {
        "id": 1,
        "name": "Alok",
        "email": "alok@example.com",
    }
    assert result["lock"] == "authorization button locked", result["lock"]


async def test_authorize_with_username_and_password_uses_the_token_endpoint(
    docs_server, fresh_db, tmp_path
):
    """/docs' Authorize, OAuth2 password flow: Swagger UI posts the form to
    POST /api/auth/token and sends the access token it answers."""
    async with Browser(tmp_path / "chromium") as browser:
        await browser.open(f"{docs_server}/docs")
        result = await browser.run(
            WAIT_FOR
            + """
            const setValue = (input, value) => {
              Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value')
                .set.call(input, value);
              input.dispatchEvent(new Event('input', {bubbles: true}));
              input.dispatchEvent(new Event('change', {bubbles: true}));
            };
            const operation = () => [...document.querySelectorAll('.opblock-get')].find(
              b => b.querySelector('.opblock-summary-path')?.textContent.trim() === '/api/auth/me');
            await waitFor(operation, 'GET /api/auth/me');
            document.querySelector('.btn.authorize').click();
            const modal = await waitFor(() => document.querySelector('.modal-ux'), 'the dialog');
            const oauth = [...modal.querySelectorAll('.auth-container')].find(
              c => c.textContent.includes('oauth2Password'));
            setValue(oauth.querySelector('#oauth_username, input[data-name=username]'), 'alok');
            setValue(oauth.querySelector('#oauth_password, input[data-name=password]'),
                     'password123');
            oauth.querySelector('.btn.modal-btn.auth.authorize').click();
            await waitFor(() => oauth.textContent.includes('Logout')
                                || oauth.querySelector('.btn.modal-btn.auth:not(.authorize)'),
                          'authorized');
            modal.querySelector('.btn-done, .close-modal').click();
            await sleep(200);
            const op = operation();
            (op.querySelector('.opblock-summary-control') || op.querySelector('.opblock-summary'))
              .click();
            (await waitFor(() => op.querySelector('.try-out__btn'), 'Try it out')).click();
            (await waitFor(() => op.querySelector('.execute'), 'Execute')).click();
            const status = await waitFor(() => op.querySelector(
              '.live-responses-table .response .response-col_status'), 'a response');
            const body = op.querySelector('.live-responses-table .response-col_description pre');
            return {status: status.textContent.trim(), body: body?.textContent || ''};"""
        )
    assert result["status"] == "200", result
    assert json.loads(result["body"]) == {"id": 1, "name": "Alok", "email": "alok@example.com"}
