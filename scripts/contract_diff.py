#!/usr/bin/env python3
"""Compare the HTTP contract of the legacy API and the new service, request by request.

  scripts/contract_diff.py https://legacy.example.app http://127.0.0.1:8000 \\
      --email alok@example.com --password '...'

Both sides get the same request matrix: login (good and bad), /api/auth/me, categories,
payment methods, dashboard users, the monthly dashboard of every user for every month of
--years, the yearly dashboard of every user for every year, /api/expenses with every filter
and combinations of them, limit/offset, and the error cases (bad month, unknown user, no
token, invalid token, bad date, bad login). Volatile values are normalised before the
comparison: tokens -> "<token>", ISO timestamps under `created_at` -> "<timestamp>", ids of
rows this tool created -> "<created-id>". Then each request is reported: status
differences, missing or extra keys, type changes (int vs float, number vs string), value
differences with their JSON path ($.category_breakdown[0].amount), and lists that hold the
same items in another order.

Exit status: 0 = no difference, 1 = differences found, 2 = could not run (bad arguments,
a side unreachable, login refused); the reason is printed on one line.

Safety: without --with-writes the only POST requests are logins, so nothing is created on
either side. --with-writes adds POST /api/expenses (two valid expenses dated 2000-01-01
with description "contract-diff probe", and invalid ones), POST /api/auth/register (one new
user named cd_<random>, plus refused attempts) and POST /api/auth/logout of a separate
session: use it against a staging copy of the legacy, not production data.

Credentials: --email/--password, or CONTRACT_DIFF_EMAIL/CONTRACT_DIFF_PASSWORD (preferred:
nothing in shell history). The account must exist on both sides with the same password.

Recordings: `--record DIR BASE` runs the matrix against one base and writes one JSON file
per request (normalised, no tokens or passwords) into DIR. A recording directory can then
stand in for the old side: `scripts/contract_diff.py DIR NEW_BASE` replays the recorded
requests against NEW_BASE and compares with the recorded answers (CI does this with
tests/contract/legacy).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import http.cookiejar
import json
import os
import re
import secrets
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from jsondiff import Difference, diff_json  # the differ shadow compare uses too

USER_AGENT = "contract-diff/1"
CALL_HEADER = "X-Contract-Diff"  # names the request in the server's access logs
CREATED_ID = "<created-id>"
TOKEN = "<token>"
TIMESTAMP = "<timestamp>"
EMAIL_SLOT, PASSWORD_SLOT = "<email>", "<password>"
ISO_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}(:?\d{2})?)?$"
)
INVALID_TOKEN = "invalid.token.value"
PROBE_DATE = "2000-01-01"


class DiffError(Exception):
    """Stops the run; printed as a one-line reason, exit status 2."""


# --------------------------------------------------------------------------------------
# The request matrix
# --------------------------------------------------------------------------------------
@dataclass
class Call:
    """One request of the matrix. `auth`: "user" (the logged-in token), "none", "invalid",
    "fresh" (a separate login, for logout). `created`: JSON paths of ids this call creates."""

    name: str
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    auth: str = "user"
    write: bool = False
    created: list[str] = field(default_factory=list)

    @staticmethod
    def make(method: str, path: str, params: dict | None = None, **kw) -> Call:
        params = {k: str(v) for k, v in (params or {}).items()}
        label = kw.pop("label", None)
        name = f"{method} {path}" + (f"?{urlencode(params)}" if params else "")
        auth = kw.get("auth", "user")
        if auth != "user":
            name += f" [{auth} token]"
        if label:
            name += f" [{label}]"
        return Call(name, method, path, params, **kw)


def build_matrix(
    users: list[int],
    categories: list[int],
    payment_methods: list[int],
    years: list[int],
    months: list[int],
    user_name: str,
    with_writes: bool,
) -> list[Call]:
    """Every endpoint of the contract; reads first, then (opt-in) writes in a fixed order."""
    c = Call.make
    unknown_user = max(users, default=0) + 1000
    calls = [
        c(
            "POST",
            "/api/auth/login",
            body={"email": EMAIL_SLOT, "password": PASSWORD_SLOT},
            auth="none",
            label="valid credentials",
        ),
        c(
            "POST",
            "/api/auth/login",
            body={"email": EMAIL_SLOT, "password": "wrong-Passw0rd!"},
            auth="none",
            label="wrong password",
        ),
        c(
            "POST",
            "/api/auth/login",
            body={"email": "nobody.contract-diff@example.invalid", "password": "wrong-Passw0rd!"},
            auth="none",
            label="unknown user",
        ),
        c("GET", "/api/auth/me"),
        c("GET", "/api/auth/me", auth="none"),
        c("GET", "/api/auth/me", auth="invalid"),
        c("GET", "/api/categories", auth="none"),
        c("GET", "/api/payment-methods", auth="none"),
        c("GET", "/api/dashboard/users"),
        c("GET", "/api/dashboard/users", auth="none"),
    ]
    for uid in users:
        for year in years:
            calls.append(c("GET", f"/api/dashboard/{uid}/yearly", {"year": year}))
            calls += [
                c("GET", f"/api/dashboard/{uid}/monthly", {"year": year, "month": m})
                for m in months
            ]
    first_user, year = (users[0] if users else 1), (years[-1] if years else 2025)
    calls += [
        c("GET", f"/api/dashboard/{first_user}/monthly", {"year": year, "month": 13}),
        c("GET", f"/api/dashboard/{first_user}/monthly", {"year": year, "month": 0}),
        c("GET", f"/api/dashboard/{first_user}/monthly", {"year": year, "month": "abc"}),
        c("GET", f"/api/dashboard/{unknown_user}/monthly", {"year": year, "month": 1}),
        c("GET", f"/api/dashboard/{unknown_user}/yearly", {"year": year}),
        c("GET", f"/api/dashboard/{first_user}/monthly", {"year": year, "month": 1}, auth="none"),
        c("GET", f"/api/dashboard/{first_user}/yearly", {"year": year}, auth="none"),
        c("GET", f"/api/dashboard/{first_user}/yearly", {"year": year}, auth="invalid"),
    ]

    exp = "/api/expenses"
    calls.append(c("GET", exp))
    calls += [c("GET", exp, {"user_id": uid}) for uid in [*users, unknown_user]]
    calls += [c("GET", exp, {"category_id": cid}) for cid in categories]
    for y in years:
        calls += [
            c("GET", exp, {"date_from": f"{y}-01-01", "date_to": f"{y}-12-31"}),
            c("GET", exp, {"date_from": f"{y}-01-01"}),
            c("GET", exp, {"date_to": f"{y}-12-31"}),
        ]
    for uid in users:
        calls += [c("GET", exp, {"user_id": uid, "category_id": cid}) for cid in categories]
        calls += [
            c("GET", exp, {"user_id": uid, "date_from": f"{y}-01-01", "date_to": f"{y}-12-31"})
            for y in years
        ]
        calls.append(
            c(
                "GET",
                exp,
                {
                    "user_id": uid,
                    "category_id": categories[0] if categories else 1,
                    "date_from": f"{year}-01-01",
                    "date_to": f"{year}-12-31",
                },
            )
        )
    calls += [
        c("GET", exp, {"limit": 5}),
        c("GET", exp, {"limit": 5, "offset": 5}),
        c("GET", exp, {"user_id": first_user, "limit": 2, "offset": 1}),
        c("GET", exp, {"date_from": f"{year}-13-01"}),
        c("GET", exp, auth="none"),
        c("GET", exp, auth="invalid"),
    ]
    if with_writes:
        cat = categories[0] if categories else 1
        pm = payment_methods[0] if payment_methods else None
        probe = {
            "category_id": cat,
            "payment_method_id": pm,
            "description": "contract-diff probe",
            "date": PROBE_DATE,
        }
        created = ["id", "expense.id"]
        calls += [
            c(
                "POST",
                exp,
                body={**probe, "amount": 12.34},
                write=True,
                created=created,
                label="decimal amount",
            ),
            c(
                "POST",
                exp,
                body={**probe, "amount": 400},
                write=True,
                created=created,
                label="integer amount",
            ),
            c("POST", exp, body={**probe, "amount": 0}, write=True, label="amount 0"),
            c("POST", exp, body={**probe, "amount": -5}, write=True, label="negative amount"),
            c(
                "POST",
                exp,
                body={"amount": 10, "date": PROBE_DATE},
                write=True,
                label="no category",
            ),
            c(
                "POST",
                exp,
                body={**probe, "amount": 10, "category_id": 999999},
                write=True,
                label="unknown category",
            ),
            c(
                "POST",
                exp,
                body={**probe, "amount": 10, "date": "2000-02-30"},
                write=True,
                label="bad date",
            ),
            c("POST", exp, body={**probe, "amount": 10}, auth="none", write=True),
            c(
                "POST",
                "/api/auth/register",
                body={"username": user_name, "password": "Str0ng!Passw0rd"},
                auth="none",
                write=True,
                label="taken username",
            ),
            c(
                "POST",
                "/api/auth/register",
                body={"username": "ab", "password": "Str0ng!Passw0rd"},
                auth="none",
                write=True,
                label="short username",
            ),
            c(
                "POST",
                "/api/auth/register",
                body={"username": f"cd_{secrets.token_hex(4)}", "password": "weak"},
                auth="none",
                write=True,
                label="weak password",
            ),
            c(
                "POST",
                "/api/auth/register",
                body={"username": f"cd_{secrets.token_hex(4)}", "password": "Str0ng!Passw0rd"},
                auth="none",
                write=True,
                created=["user.id"],
                label="new user",
            ),
            c("POST", "/api/auth/logout", auth="fresh", write=True),
        ]
    names = [call.name for call in calls]
    assert len(names) == len(set(names)), "request names must be unique"
    return calls


# --------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------
def normalise(body: Any, created: Sequence[str] = ()) -> Any:
    """Replace values that legitimately differ between two runs or two deployments."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if key == "token" and isinstance(item, str):
                    out[key] = TOKEN
                elif key == "created_at" and isinstance(item, str) and ISO_TIMESTAMP.match(item):
                    out[key] = TIMESTAMP
                else:
                    out[key] = walk(item)
            return out
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    body = walk(body)
    for dotted in created:
        *parents, last = dotted.split(".")
        node = body
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(last), int):
            node[last] = CREATED_ID
    return body


# --------------------------------------------------------------------------------------
# The two sides
# --------------------------------------------------------------------------------------
@dataclass
class Reply:
    status: int
    body: Any


def no_cookies() -> http.cookiejar.CookieJar:
    """A jar that keeps nothing: the login's `jwt` cookie must not authenticate the
    requests that are meant to go without a token."""
    return http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


class LiveSide:
    """A running deployment (legacy or new) reached over HTTP."""

    def __init__(
        self,
        label: str,
        base_url: str,
        email: str,
        password: str,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30,
        concurrency: int = 8,
    ):
        self.label, self.base_url = label, base_url.rstrip("/")
        self.email, self.password = email, password
        self.client = httpx.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            timeout=timeout,
            cookies=no_cookies(),
            headers={"User-Agent": USER_AGENT},
        )
        self.token: str | None = None
        self.user: dict[str, Any] = {}
        self.limit = asyncio.Semaphore(concurrency)

    async def close(self) -> None:
        await self.client.aclose()

    async def login(self) -> str:
        try:
            response = await self.client.post(
                "/api/auth/login",
                json={"email": self.email, "password": self.password},
                headers={CALL_HEADER: "login (session)"},
            )
        except httpx.HTTPError as exc:
            raise DiffError(f"{self.label} ({self.base_url}) unreachable: {exc!r}") from None
        if response.status_code != 200:
            raise DiffError(
                f"{self.label} ({self.base_url}) refused the login: "
                f"HTTP {response.status_code} {response.text[:200]}"
            )
        data = response.json()
        token = data.get("token")
        if not isinstance(token, str):
            raise DiffError(f"{self.label} login answered without a token")
        self.user = data.get("user") or {}
        return token

    async def start(self) -> None:
        self.token = await self.login()

    async def get_ids(self, path: str) -> list[int]:
        headers = {"Authorization": f"Bearer {self.token}", CALL_HEADER: f"matrix {path}"}
        response = await self.client.get(path, headers=headers)
        if response.status_code != 200:
            raise DiffError(f"{self.label}: GET {path} answered {response.status_code}")
        return [row["id"] for row in response.json()]

    async def fetch(self, call: Call) -> Reply:
        headers = {CALL_HEADER: call.name}
        token = {"user": self.token, "invalid": INVALID_TOKEN, "none": None}.get(call.auth)
        if call.auth == "fresh":
            token = await self.login()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = call.body
        if isinstance(body, dict):
            body = {
                k: {EMAIL_SLOT: self.email, PASSWORD_SLOT: self.password}.get(v, v)
                if isinstance(v, str)
                else v
                for k, v in body.items()
            }
        async with self.limit:
            try:
                response = await self.client.request(
                    call.method, call.path, params=call.params, json=body, headers=headers
                )
            except httpx.HTTPError as exc:
                raise DiffError(f"{self.label}: {call.name} failed: {exc!r}") from None
        try:
            data = response.json()
        except ValueError:
            data = {"<non-json body>": response.text[:500]}
        return Reply(response.status_code, normalise(data, call.created))


class RecordedSide:
    """A directory written by --record: the recorded requests and their answers."""

    def __init__(self, directory: Path):
        self.label, self.base_url = "recorded", str(directory)
        files = sorted(directory.glob("*.json"))
        if not files:
            raise DiffError(f"no recording (*.json) in {directory}")
        self.entries = [json.loads(f.read_text()) for f in files]
        self.replies = {
            e["request"]["name"]: Reply(e["response"]["status"], e["response"]["body"])
            for e in self.entries
        }

    def calls(self) -> list[Call]:
        return [Call(**e["request"]) for e in self.entries]

    async def fetch(self, call: Call) -> Reply:
        return self.replies[call.name]

    async def close(self) -> None:
        pass


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9=_-]+", "_", text).strip("_")[:150]


def write_recording(directory: Path, calls: list[Call], replies: list[Reply]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.json"):
        old.unlink()
    for index, (call, reply) in enumerate(zip(calls, replies), 1):
        entry = {"request": asdict(call), "response": {"status": reply.status, "body": reply.body}}
        (directory / f"{index:04d}_{slug(call.name)}.json").write_text(
            json.dumps(entry, indent=2, ensure_ascii=False) + "\n"
        )


# --------------------------------------------------------------------------------------
# Running and reporting
# --------------------------------------------------------------------------------------
@dataclass
class Result:
    call: Call
    old: Reply
    new: Reply
    differences: list[Difference]


def compare_replies(old: Reply, new: Reply, key_order: bool = False) -> list[Difference]:
    out = (
        [] if old.status == new.status else [Difference("status", "status", old.status, new.status)]
    )
    return out + diff_json(old.body, new.body, key_order=key_order)


async def fetch_all(side, calls: list[Call]) -> list[Reply]:
    """Reads concurrently; writes one by one, in order, after every read."""
    reads = [c for c in calls if not c.write]
    replies = dict(
        zip((c.name for c in reads), await asyncio.gather(*(side.fetch(c) for c in reads)))
    )
    for call in calls:
        if call.write:
            replies[call.name] = await side.fetch(call)
    return [replies[c.name] for c in calls]


def select(calls: list[Call], only: list[str] | None, with_writes: bool) -> list[Call]:
    return [
        c
        for c in calls
        if (with_writes or not c.write) and (not only or any(c.path.startswith(p) for p in only))
    ]


async def live_matrix(
    sides: list[LiveSide], years: list[int], months: list[int], with_writes: bool
) -> list[Call]:
    """The matrix over the union of both sides' users and reference data."""
    users, categories, methods = set(), set(), set()
    for side in sides:
        users |= set(await side.get_ids("/api/dashboard/users"))
        categories |= set(await side.get_ids("/api/categories"))
        methods |= set(await side.get_ids("/api/payment-methods"))
    user_name = sides[0].user.get("name") or "Alok"
    return build_matrix(
        sorted(users), sorted(categories), sorted(methods), years, months, user_name, with_writes
    )


async def run_diff(old, new, calls: list[Call], key_order: bool = False) -> list[Result]:
    old_replies = await fetch_all(old, calls)
    new_replies = await fetch_all(new, calls)
    return [
        Result(c, o, n, compare_replies(o, n, key_order))
        for c, o, n in zip(calls, old_replies, new_replies)
    ]


def text_report(
    results: list[Result], old_label: str, new_label: str, verbose: bool = False
) -> str:
    lines = []
    for r in results:
        if not r.differences:
            if verbose:
                lines.append(f"[ same ] {r.call.name}  ({r.old.status})")
            continue
        lines.append(
            f"[ DIFF ] {r.call.name}  ({old_label} {r.old.status}, {new_label} {r.new.status})"
        )
        lines += [f"         - {d.describe(old_label, new_label)}" for d in r.differences]
    different = sum(1 for r in results if r.differences)
    lines.append(
        f"{len(results)} requests: {len(results) - different} identical, {different} different"
    )
    return "\n".join(lines)


def json_report(results: list[Result], old_base: str, new_base: str) -> dict[str, Any]:
    return {
        "old_base": old_base,
        "new_base": new_base,
        "requests": len(results),
        "different": sum(1 for r in results if r.differences),
        "results": [
            {
                "name": r.call.name,
                "method": r.call.method,
                "path": r.call.path,
                "params": r.call.params,
                "old_status": r.old.status,
                "new_status": r.new.status,
                "differences": [{**asdict(d), "message": d.describe()} for d in r.differences],
            }
            for r in results
        ],
    }


def parse_ints(text: str, low: int, high: int, what: str) -> list[int]:
    values: list[int] = []
    for part in text.split(","):
        part = part.strip()
        start, _, end = part.partition("-")
        try:
            first, last = int(start), int(end or start)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad {what} list: {text!r}") from None
        values += range(first, last + 1)
    if not values or any(not low <= v <= high for v in values):
        raise argparse.ArgumentTypeError(f"{what} must be within {low}-{high}: {text!r}")
    return sorted(set(values))


def parser() -> argparse.ArgumentParser:
    this_year = dt.date.today().year
    p = argparse.ArgumentParser(
        prog="contract_diff.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__,
        epilog="""examples:
  # everything read-only, legacy vs new (credentials from the environment)
  export CONTRACT_DIFF_EMAIL=alok@example.com CONTRACT_DIFF_PASSWORD=...
  scripts/contract_diff.py https://legacy.example.app http://127.0.0.1:8000

  # only the dashboards of 2024, report as JSON too
  scripts/contract_diff.py OLD NEW --only /api/dashboard --years 2024 --json diff.json

  # record the legacy answers (on a staging copy loaded with the fixed dataset)
  scripts/contract_diff.py --record tests/contract/legacy --with-writes \\
      --years 2023-2025 https://legacy-staging.example.app

  # compare the new service with a recording
  scripts/contract_diff.py tests/contract/legacy http://127.0.0.1:8000 --with-writes

exit status: 0 no difference, 1 differences, 2 could not run""",
    )
    p.add_argument(
        "old",
        metavar="OLD_BASE",
        help="legacy base URL (e.g. https://legacy.example.app), or a directory "
        "written by --record",
    )
    p.add_argument(
        "new",
        metavar="NEW_BASE",
        nargs="?",
        help="new service base URL (e.g. http://127.0.0.1:8000); not with --record",
    )
    p.add_argument(
        "--email",
        default=os.environ.get("CONTRACT_DIFF_EMAIL"),
        help="login (email or username) that exists on both sides [$CONTRACT_DIFF_EMAIL]",
    )
    p.add_argument(
        "--password",
        default=os.environ.get("CONTRACT_DIFF_PASSWORD"),
        help="its password [$CONTRACT_DIFF_PASSWORD]",
    )
    p.add_argument(
        "--years",
        type=lambda s: parse_ints(s, 1900, 2200, "year"),
        default=[this_year - 1, this_year],
        help="years for the dashboards and date filters, e.g. 2024,2025 or "
        "2023-2025 (default: last year and this year)",
    )
    p.add_argument(
        "--months",
        type=lambda s: parse_ints(s, 1, 12, "month"),
        default=list(range(1, 13)),
        help="months of the monthly dashboards, e.g. 1-3 (default: 1-12)",
    )
    p.add_argument(
        "--only",
        action="append",
        metavar="PATH",
        help="only requests whose path starts with PATH (repeatable), e.g. --only /api/dashboard",
    )
    p.add_argument(
        "--with-writes",
        action="store_true",
        help="also send the POST requests that create data (expenses, a user, "
        "a logout); off by default",
    )
    p.add_argument("--json", metavar="FILE", type=Path, help="also write the report as JSON")
    p.add_argument(
        "--record",
        metavar="DIR",
        type=Path,
        help="record OLD_BASE's answers into DIR instead of comparing",
    )
    p.add_argument(
        "--key-order",
        action="store_true",
        help="also report objects whose keys come in another order",
    )
    p.add_argument("--timeout", type=float, default=30, help="seconds per request (30)")
    p.add_argument("--concurrency", type=int, default=8, help="parallel read requests per side (8)")
    p.add_argument("-v", "--verbose", action="store_true", help="list identical requests too")
    return p


async def main_async(args: argparse.Namespace, transports: dict[str, Any] | None = None) -> int:
    """`transports` maps a base URL to an httpx transport (tests run apps in process)."""
    transports = transports or {}

    def live(label: str, base: str) -> LiveSide:
        if not args.email or not args.password:
            raise DiffError(
                "credentials missing: --email/--password or "
                "CONTRACT_DIFF_EMAIL/CONTRACT_DIFF_PASSWORD"
            )
        if not base.startswith(("http://", "https://")):
            raise DiffError(f"{label} base is not an http(s) URL or a recording directory: {base}")
        return LiveSide(
            label,
            base,
            args.email,
            args.password,
            transports.get(base),
            args.timeout,
            args.concurrency,
        )

    if args.record:
        if args.new:
            raise DiffError("--record takes one base URL")
        side = live("recorded", args.old)
        try:
            await side.start()
            calls = select(
                await live_matrix([side], args.years, args.months, args.with_writes),
                args.only,
                args.with_writes,
            )
            print(f"recording {len(calls)} requests from {side.base_url} ...", file=sys.stderr)
            replies = await fetch_all(side, calls)
        finally:
            await side.close()
        write_recording(args.record, calls, replies)
        print(f"wrote {len(calls)} recorded responses to {args.record}")
        return 0

    if not args.new:
        raise DiffError("NEW_BASE is required (or use --record DIR)")
    old: RecordedSide | LiveSide
    old = RecordedSide(Path(args.old)) if Path(args.old).is_dir() else live("legacy", args.old)
    new = live("new", args.new)
    old_label = "recorded" if isinstance(old, RecordedSide) else "legacy"
    try:
        await new.start()
        if isinstance(old, RecordedSide):
            calls = old.calls()
        else:
            await old.start()
            calls = await live_matrix([old, new], args.years, args.months, args.with_writes)
        calls = select(calls, args.only, args.with_writes)
        if not calls:
            raise DiffError("no request left after --only / --with-writes")
        print(
            f"comparing {len(calls)} requests: {old.base_url} vs {new.base_url} ...",
            file=sys.stderr,
        )
        results = await run_diff(old, new, calls, args.key_order)
    finally:
        await old.close()
        await new.close()
    print(text_report(results, old_label, "new", args.verbose))
    if args.json:
        args.json.write_text(
            json.dumps(
                json_report(results, old.base_url, new.base_url), indent=2, ensure_ascii=False
            )
            + "\n"
        )
    return 1 if any(r.differences for r in results) else 0


async def cli(argv: list[str] | None = None, transports: dict[str, Any] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return await main_async(args, transports)
    except DiffError as exc:
        print(f"contract_diff: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(asyncio.run(cli()))
