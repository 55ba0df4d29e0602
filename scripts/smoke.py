#!/usr/bin/env python3
"""Smoke test of a deployed gateway: run it right after every deploy (docs/compatibility.md).

    python scripts/smoke.py --base-url https://<your-app> --email you@example.com --password '...'

It logs in as an existing member (use your own account; `--password-stdin` keeps the
password out of the shell history), then checks, in this order:

  1. GET  /health/ready            200: Postgres and PostgREST reachable, revocation proven
  2. POST /api/auth/login          200 and a token
  3. GET  /health/versions         prints the PostgreSQL and PostgREST versions found
  4. GET  /api/expenses?limit=5    200, a JSON list (the expense list)
  5. GET  /api/dashboard/users     200, a JSON list; then the monthly and yearly dashboard of
                                   the member logged in: 200, JSON objects
  6. GET  /api/expenses/export.csv 200, text/csv starting with the CSV header (today only)
  7. POST /api/auth/logout         200; then the same token must be REFUSED (401) by
                                   /api/auth/me, the expense list and a dashboard: logout is
                                   enforced by this deployment

It changes nothing but what a login and a logout write (an audit row, one revoked token).
Exit status 0 and "smoke test passed" when every check held; otherwise 1 and one line
"smoke test failed: <check>: <reason>" on stderr (2: wrong arguments). Needs only httpx
(in requirements.txt).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

import httpx

CSV_HEADER = "id,date,user,category,payment_method,amount,description,created_at"


class Failed(Exception):
    """One check failed; the message names it and why, in one line."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/smoke.py",
        description="Check a deployed gateway end to end right after a deploy: readiness, "
        "login, versions, the expense list, dashboards, CSV export, and that a logged-out "
        "token is refused. Prints the PostgreSQL and PostgREST versions it found.",
        epilog="example: python scripts/smoke.py --base-url https://ffb.example.com "
        "--email rashmi@example.com --password-stdin < pw.txt",
    )
    parser.add_argument("--base-url", required=True, help="the API's base URL (https://...)")
    parser.add_argument("--email", required=True, help="an existing member's email or username")
    secret = parser.add_mutually_exclusive_group(required=True)
    secret.add_argument("--password", help="that member's password")
    secret.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    parser.add_argument(
        "--timeout", type=float, default=15.0, help="seconds per request (default 15)"
    )
    args = parser.parse_args(argv)
    if args.password_stdin:
        args.password = sys.stdin.readline().rstrip("\n")
    return args


def expect(response: httpx.Response, check: str, status: int = 200) -> Any:
    if response.status_code != status:
        try:
            detail = response.json().get("error", "")
        except (ValueError, AttributeError):
            detail = response.text[:120].replace("\n", " ")
        said = f" ({detail})" if detail else ""
        raise Failed(f"{check}: HTTP {response.status_code}{said}, expected {status}")
    if "json" in response.headers.get("content-type", ""):
        return response.json()
    return response.text


def run(args: argparse.Namespace, client: httpx.Client) -> list[str]:
    """Every check in order; returns the lines to print, raises Failed."""
    lines = []
    ready = expect(client.get("/health/ready"), "GET /health/ready")
    lines.append(f"ready: {ready.get('checks')}")

    login = expect(
        client.post("/api/auth/login", json={"email": args.email, "password": args.password}),
        "POST /api/auth/login",
    )
    token, me = login.get("token"), login.get("user") or {}
    if not token or not isinstance(me.get("id"), int):
        raise Failed("POST /api/auth/login: no token or user in the answer")
    auth = {"Authorization": f"Bearer {token}"}
    lines.append(f"logged in as {me.get('name')} (id {me['id']})")

    versions = expect(client.get("/health/versions", headers=auth), "GET /health/versions")
    lines.append(f"PostgreSQL {versions.get('postgres')}, PostgREST {versions.get('postgrest')}")

    expenses = expect(client.get("/api/expenses?limit=5", headers=auth), "GET /api/expenses")
    if not isinstance(expenses, list):
        raise Failed("GET /api/expenses: not a JSON list")
    lines.append(f"expense list: {len(expenses)} of the latest shown")

    users = expect(client.get("/api/dashboard/users", headers=auth), "GET /api/dashboard/users")
    if not isinstance(users, list) or not users:
        raise Failed("GET /api/dashboard/users: not a non-empty JSON list")
    monthly_path = f"/api/dashboard/{me['id']}/monthly"
    for path in (monthly_path, f"/api/dashboard/{me['id']}/yearly"):
        body = expect(client.get(path, headers=auth), f"GET {path}")
        if not isinstance(body, dict) or "total_spent" not in body:
            raise Failed(f"GET {path}: not a dashboard")
    lines.append(f"dashboards: {len(users)} members, monthly and yearly answered")

    today = dt.date.today().isoformat()
    export = client.get(f"/api/expenses/export.csv?date_from={today}&date_to={today}", headers=auth)
    text = expect(export, "GET /api/expenses/export.csv")
    if not export.headers.get("content-type", "").startswith("text/csv") or not str(
        text
    ).startswith(CSV_HEADER):
        raise Failed("GET /api/expenses/export.csv: not the CSV export")
    lines.append("export: CSV answered")

    expect(client.post("/api/auth/logout", headers=auth), "POST /api/auth/logout")
    for path in ("/api/auth/me", "/api/expenses?limit=1", monthly_path):
        response = client.get(path, headers=auth)
        if response.status_code != 401:
            raise Failed(
                f"logout is NOT enforced: GET {path} with the logged-out token answered "
                f"HTTP {response.status_code}, expected 401"
            )
    lines.append("logout: the logged-out token is refused")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with httpx.Client(
            base_url=args.base_url.rstrip("/"), timeout=args.timeout, follow_redirects=False
        ) as client:
            for line in run(args, client):
                print(line)
    except Failed as exc:
        print(f"smoke test failed: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"smoke test failed: {args.base_url}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
