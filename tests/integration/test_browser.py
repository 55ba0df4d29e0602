"""A real headless Chromium against a real gunicorn server: CORS and the `jwt` cookie.

The frontend lives on another origin than the API. A page served from the allowed origin
(127.0.0.1:<A>, the only entry of CORS_ORIGINS) logs in with `fetch(..., {credentials:
'include'})` and then loads the dashboard with the cookie alone (no Authorization header);
127.0.0.1:<A> and 127.0.0.1:<API> are the same site, so the SameSite=Strict cookie goes
along. The same page from 127.0.0.1:<B> (not listed) is refused by the browser's CORS
check: its fetches reject. The page writes its findings as JSON into the DOM, which
Chromium's --dump-dom hands back.
"""

from __future__ import annotations

import functools
import html
import json
import re
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers import sql

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

PAGE = """<!doctype html>
<html><head><title>running</title></head><body><pre id="result"></pre>
<script>
const API = new URLSearchParams(location.search).get("api");
async function step(out, name, run) {
  try { out[name] = await run(); } catch (e) { out[name] = {rejected: String(e)}; }
}
(async () => {
  const out = {};
  const json = {"Content-Type": "application/json"};
  await step(out, "categories", async () => {
    const r = await fetch(API + "/api/categories", {credentials: "include"});
    return {status: r.status, count: (await r.json()).length,
            requestId: r.headers.get("X-Request-ID") !== null};
  });
  await step(out, "login", async () => {
    const r = await fetch(API + "/api/auth/login", {method: "POST", credentials: "include",
      headers: json, body: JSON.stringify({email: "alok@example.com", password: "password123"})});
    const body = await r.json();
    return {status: r.status, user: body.user, hasToken: typeof body.token === "string"};
  });
  out.cookieVisibleToScript = document.cookie.includes("jwt=");
  await step(out, "dashboard", async () => {
    const r = await fetch(API + "/api/dashboard/1/monthly?year=2025&month=1",
                          {credentials: "include"});
    return {status: r.status, body: await r.json()};
  });
  await step(out, "me", async () => {
    const r = await fetch(API + "/api/auth/me", {credentials: "include"});
    return {status: r.status, body: await r.json()};
  });
  await step(out, "logout", async () => {
    const r = await fetch(API + "/api/auth/logout", {method: "POST", credentials: "include"});
    return {status: r.status};
  });
  await step(out, "afterLogout", async () => {
    const r = await fetch(API + "/api/auth/me", {credentials: "include"});
    return {status: r.status, body: await r.json()};
  });
  document.getElementById("result").textContent = JSON.stringify(out);
  document.title = "done";
})();
</script></body></html>
"""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture
def static_site(tmp_path):
    """static_site() -> (origin, page URL): a tiny static server on a free port serving
    the page (which calls the API named by its `?api=` parameter). Shut down at teardown."""
    servers: list[ThreadingHTTPServer] = []

    def serve() -> tuple[str, str]:
        root = tmp_path / f"site{len(servers)}"
        root.mkdir()
        (root / "index.html").write_text(PAGE)
        server = ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root))
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        origin = f"http://127.0.0.1:{server.server_address[1]}"
        return origin, f"{origin}/index.html"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def chromium_results(url: str, profile: Path) -> dict:
    """Load url in headless Chromium, let its script finish, return what it wrote."""
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90)
    match = re.search(r'<pre id="result">(.*?)</pre>', done.stdout, re.S)
    assert match and "<title>done</title>" in done.stdout, (
        f"page did not finish (exit {done.returncode}): {done.stdout[-500:]} {done.stderr[-1500:]}"
    )
    return json.loads(html.unescape(match.group(1)))


def test_allowed_origin_logs_in_and_reads_dashboard_with_the_cookie_alone(
    static_site, start_server, fresh_db, tmp_path
):
    origin, page = static_site()
    api = start_server(env={"CORS_ORIGINS": origin})
    seed_january(fresh_db)

    out = chromium_results(f"{page}?api={api}", tmp_path / "chromium")

    assert out["categories"] == {"status": 200, "count": 4, "requestId": True}
    assert out["login"] == {
        "status": 200,
        "hasToken": True,
        "user": {"id": 1, "name": "Alok", "email": "alok@example.com"},
    }
    assert out["cookieVisibleToScript"] is False  # httpOnly
    assert out["dashboard"]["status"] == 200, out["dashboard"]
    assert out["dashboard"]["body"]["user"] == {"id": 1, "name": "Alok"}
    assert out["dashboard"]["body"]["total_spent"] == 150
    assert out["me"] == {
        "status": 200,
        "body": {"id": 1, "name": "Alok", "email": "alok@example.com"},
    }
    assert out["logout"] == {"status": 200}
    assert out["afterLogout"]["status"] == 401  # cookie cleared and the token revoked


def test_disallowed_origin_is_blocked_by_cors(static_site, start_server, fresh_db, tmp_path):
    allowed, _ = static_site()
    _, page = static_site()  # the same page on another port: not in CORS_ORIGINS
    log = tmp_path / "server.log"
    api = start_server(env={"CORS_ORIGINS": allowed}, log_path=log)

    out = chromium_results(f"{page}?api={api}", tmp_path / "chromium")

    for step in ("categories", "login", "dashboard", "me", "logout", "afterLogout"):
        assert "rejected" in out[step], (step, out[step])
        assert "Failed to fetch" in out[step]["rejected"]
    # The server was reached (so the rejection is the CORS check, not a dead port), but the
    # preflight refused the login: the POST itself was never sent, no cookie was ever set.
    access = [json.loads(line) for line in log.read_text().splitlines() if '"ffb.access"' in line]
    seen = {(a["method"], a["path"], a["status"]) for a in access}
    assert ("GET", "/api/categories", 200) in seen
    assert ("OPTIONS", "/api/auth/login", 400) in seen
    assert not any(a["method"] == "POST" and a["path"] == "/api/auth/login" for a in access)


def seed_january(dsn: str) -> None:
    with sql(dsn) as cur:
        cur.executemany(
            "insert into public.expenses (user_id, category_id, amount, date) "
            "values (1, %s, %s, %s)",
            [(1, 100, "2025-01-10"), (3, 50, "2025-01-20"), (1, 70, "2025-02-01")],
        )
