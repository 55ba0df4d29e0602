"""scripts/contract_diff.py against real servers of our app, a recorded "legacy" server with
planted differences, and the committed legacy recording (tests/contract/legacy)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from scripts import contract_diff
from tests.contract import dataset
from tests.helpers import ROOT, free_port, load_contract_dataset

OURS = "http://ours.test"
LEGACY_RECORDING = ROOT / "tests" / "contract" / "legacy"
CREDENTIALS = ["--email", "alok@example.com", "--password", "password123"]
YEARS = ["--years", "2024-2025", "--months", "1,2,12"]


@pytest.fixture
def contract_data(dsn, api) -> str:
    return load_contract_dataset(dsn, api)


@pytest.fixture
def in_process(api) -> dict[str, httpx.AsyncBaseTransport]:
    """OURS -> the session's app, in process."""
    return {OURS: httpx.ASGITransport(app=api.app, client=("127.0.0.1", 50000))}


def report(path: Path) -> dict:
    return json.loads(path.read_text())


def differences(data: dict) -> dict[str, list[dict]]:
    return {r["name"]: r["differences"] for r in data["results"] if r["differences"]}


# --------------------------------------------------------------------------------------
# A small "legacy" server replaying recorded answers (uvicorn in a thread)
# --------------------------------------------------------------------------------------
class RecordedLegacy:
    """Answers each request with the recording of the same name (the X-Contract-Diff
    header); remembers what it was sent."""

    def __init__(self, entries: list[dict]):
        self.replies = {e["request"]["name"]: e["response"] for e in entries}
        self.received: list[tuple[str, str]] = []
        app = Starlette(
            routes=[Route("/{path:path}", self.answer, methods=["GET", "POST", "PUT", "DELETE"])]
        )
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="off"
            )
        )
        self.base = f"http://127.0.0.1:{self.server.config.port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def lookup(self, name: str) -> dict:
        if name == "login (session)":
            reply = copy.deepcopy(
                self.replies["POST /api/auth/login [none token] [valid credentials]"]
            )
            reply["body"]["token"] = "legacy-session-token"
            return reply
        if name.startswith("matrix "):  # the ids the matrix is built from
            path = name.removeprefix("matrix ")
            return next(
                r
                for n, r in self.replies.items()
                if n in (f"GET {path}", f"GET {path} [none token]")
            )
        return self.replies[name]

    async def answer(self, request: Request) -> JSONResponse:
        self.received.append((request.method, request.url.path))
        try:
            reply = self.lookup(request.headers.get(contract_diff.CALL_HEADER, ""))
        except (KeyError, StopIteration):
            return JSONResponse({"error": "not recorded"}, status_code=599)
        if request.url.path == "/api/auth/register" and reply["status"] == 200:
            reply = copy.deepcopy(reply)  # each run registers a new random username
            reply["body"]["user"]["name"] = (await request.json())["username"]
        return JSONResponse(reply["body"], status_code=reply["status"])

    def __enter__(self) -> RecordedLegacy:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "recorded legacy server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


async def record_ours(tmp_path: Path, transports, *extra: str) -> list[dict]:
    directory = tmp_path / "recording"
    assert (
        await contract_diff.cli(
            ["--record", str(directory), OURS, *CREDENTIALS, *YEARS, *extra], transports
        )
        == 0
    )
    if "--with-writes" in extra:  # the recording wrote on our side: back to the dataset
        dataset.load(os.environ["DATABASE_URL"])
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def entry(entries: list[dict], name: str) -> dict:
    return next(e for e in entries if e["request"]["name"] == name)


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------
async def test_two_servers_of_our_app_have_no_differences(
    contract_data, start_server, tmp_path, capsys
):
    first, second = start_server(workers=1), start_server(workers=1)
    out = tmp_path / "report.json"
    code = await contract_diff.cli([first, second, *CREDENTIALS, *YEARS, "--json", str(out)])
    assert code == 0, capsys.readouterr().out
    data = report(out)
    assert data["different"] == 0 and data["requests"] > 100
    paths = {r["path"] for r in data["results"]}
    for path in (
        "/api/auth/login",
        "/api/auth/me",
        "/api/categories",
        "/api/payment-methods",
        "/api/expenses",
        "/api/dashboard/users",
        "/api/dashboard/5/monthly",
        "/api/dashboard/5/yearly",
        "/api/dashboard/1005/monthly",
    ):
        assert path in paths
    assert "0 different" in capsys.readouterr().out


async def test_planted_differences_are_each_reported(contract_data, in_process, tmp_path, capsys):
    entries = await record_ours(tmp_path, in_process)
    monthly = "GET /api/dashboard/1/monthly?year=2025&month=1"
    yearly = "GET /api/dashboard/2/yearly?year=2024"
    entry(entries, "GET /api/auth/me")["response"]["body"].pop("email")  # missing key
    entry(entries, "GET /api/categories [none token]")["response"]["body"][0]["color"] = "red"
    entry(entries, yearly)["response"]["body"]["total_spent"] = 1300.0  # float vs int
    methods = entry(entries, "GET /api/payment-methods [none token]")["response"]["body"]
    methods.reverse()  # list order
    entry(entries, "GET /api/expenses [none token]")["response"]["status"] = 403  # status
    entry(entries, monthly)["response"]["body"]["category_breakdown"][1]["amount"] = 1500.25

    out = tmp_path / "report.json"
    with RecordedLegacy(entries) as legacy:
        code = await contract_diff.cli(
            [legacy.base, OURS, *CREDENTIALS, *YEARS, "--json", str(out)], in_process
        )
    text = capsys.readouterr().out
    assert code == 1
    found = {
        name: [(d["kind"], d["path"], d["old"], d["new"]) for d in diffs]
        for name, diffs in differences(report(out)).items()
    }
    assert found == {
        "GET /api/auth/me": [("extra_key", "$.email", None, "alok@example.com")],
        "GET /api/categories [none token]": [("missing_key", "$[0].color", "red", None)],
        yearly: [("type", "$.total_spent", 1300.0, 1300)],
        "GET /api/payment-methods [none token]": [
            (
                "order",
                "$",
                ["Other", "UPI", "Debit Card", "Credit Card", "Cash"],
                ["Cash", "Credit Card", "Debit Card", "UPI", "Other"],
            )
        ],
        "GET /api/expenses [none token]": [("status", "status", 403, 401)],
        monthly: [("value", "$.category_breakdown[1].amount", 1500.25, 1500.5)],
    }
    assert "$.total_spent: type float -> int (legacy 1300.0, new 1300)" in text
    assert "status: legacy 403, new 401" in text
    assert "6 different" in text


async def test_without_with_writes_only_logins_are_posted(contract_data, in_process, tmp_path):
    entries = await record_ours(tmp_path, in_process, "--with-writes")
    with RecordedLegacy(entries) as legacy:
        code = await contract_diff.cli([legacy.base, OURS, *CREDENTIALS, *YEARS], in_process)
    assert code == 0
    posts = {path for method, path in legacy.received if method != "GET"}
    assert posts == {"/api/auth/login"}
    assert len(legacy.received) > 100


async def test_with_writes_posts_expenses_register_and_logout(contract_data, in_process, tmp_path):
    entries = await record_ours(tmp_path, in_process, "--with-writes")
    with RecordedLegacy(entries) as legacy:
        code = await contract_diff.cli(
            [legacy.base, OURS, *CREDENTIALS, *YEARS, "--with-writes"], in_process
        )
    assert code == 0
    posts = {path for method, path in legacy.received if method == "POST"}
    assert posts == {"/api/auth/login", "/api/expenses", "/api/auth/register", "/api/auth/logout"}
    created = entry(entries, "POST /api/expenses [integer amount]")["response"]
    assert created["status"] == 201 and created["body"]["id"] == contract_diff.CREATED_ID
    assert created["body"]["expense"]["amount"] == 400


async def test_only_narrows_the_matrix_by_path_prefix(contract_data, in_process, tmp_path):
    out = tmp_path / "report.json"
    code = await contract_diff.cli(
        [OURS, OURS, *CREDENTIALS, *YEARS, "--only", "/api/dashboard/1/", "--json", str(out)],
        in_process,
    )
    assert code == 0
    paths = {r["path"] for r in report(out)["results"]}
    assert paths == {"/api/dashboard/1/monthly", "/api/dashboard/1/yearly"}


async def test_recorded_legacy_responses_match_our_service(contract_data, in_process, capsys):
    """CI's contract check: tests/contract/legacy (the legacy's answers on the fixed
    dataset) replayed against our app, writes included."""
    assert len(list(LEGACY_RECORDING.glob("*.json"))) > 150
    code = await contract_diff.cli(
        [str(LEGACY_RECORDING), OURS, *CREDENTIALS, "--with-writes"], in_process
    )
    text = capsys.readouterr().out
    assert code == 0, text
    assert " 0 different" in text


async def test_a_difference_from_the_recording_fails_the_check(
    contract_data, in_process, tmp_path, capsys
):
    directory = tmp_path / "legacy"
    directory.mkdir()
    for path in LEGACY_RECORDING.glob("*.json"):
        (directory / path.name).write_text(path.read_text())
    target = next(directory.glob("*_GET_api_dashboard_1_monthly_year=2025_month=1.json"))
    recorded = json.loads(target.read_text())
    recorded["response"]["body"]["total_spent"] = 6750.51
    target.write_text(json.dumps(recorded))
    code = await contract_diff.cli(
        [str(directory), OURS, *CREDENTIALS, "--only", "/api/dashboard/1/monthly"], in_process
    )
    assert code == 1
    assert "$.total_spent: recorded 6750.51, new 6750.5" in capsys.readouterr().out


async def test_unreachable_side_exits_2_with_one_line_reason(in_process, capsys):
    base = f"http://127.0.0.1:{free_port()}"
    code = await contract_diff.cli([base, OURS, *CREDENTIALS], in_process)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("contract_diff: legacy") and "unreachable" in err[-1]


async def test_refused_login_exits_2(contract_data, in_process, capsys):
    code = await contract_diff.cli(
        [OURS, OURS, "--email", "alok@example.com", "--password", "wrong-password"], in_process
    )
    assert code == 2
    assert "refused the login: HTTP 401" in capsys.readouterr().err


async def test_missing_credentials_exit_2(monkeypatch, capsys):
    monkeypatch.delenv("CONTRACT_DIFF_EMAIL", raising=False)
    monkeypatch.delenv("CONTRACT_DIFF_PASSWORD", raising=False)
    assert await contract_diff.cli([OURS, OURS]) == 2
    assert "credentials missing" in capsys.readouterr().err


def test_credentials_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("CONTRACT_DIFF_EMAIL", "alok@example.com")
    monkeypatch.setenv("CONTRACT_DIFF_PASSWORD", "secret-Pass1!")
    args = contract_diff.parser().parse_args(["http://a", "http://b"])
    assert (args.email, args.password) == ("alok@example.com", "secret-Pass1!")


def test_help_explains_usage_safety_and_exit_codes():
    result = subprocess.run(
        [sys.executable, "scripts/contract_diff.py", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    for words in (
        "OLD_BASE",
        "NEW_BASE",
        "--with-writes",
        "--only",
        "--json",
        "--record",
        "CONTRACT_DIFF_EMAIL",
        "exit status",
    ):
        assert words in result.stdout


def test_recording_holds_no_token_or_password():
    text = "".join(p.read_text() for p in LEGACY_RECORDING.glob("*.json"))
    assert "password123" not in text and "eyJ" not in text
