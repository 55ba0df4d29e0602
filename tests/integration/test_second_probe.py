"""Regression tests for the second outside probe's findings on the HTTP surface and the
database (issue 24, findings 4, 5, 7, 9, 10, 11 and 12). Each replays the probe's
reproduction on the real stack; every refused request changes nothing.

(Findings 1, 2 and 6, the admin tools: test_second_probe_admin.py.)
"""

from __future__ import annotations

import csv
import io
import json

import httpx
import pytest

from tests.helpers import app_client, bearer, data_state, sql, stack_settings, token_for
from tests.integration.test_expense_changes import ALOK, AMOL, create
from tests.integration.test_registration_modes import start_warnings
from tests.integration.test_rls import rest, user_headers


@pytest.fixture
def alok():
    return bearer(token_for(ALOK, "Alok"))


@pytest.fixture
def amol():
    return bearer(token_for(AMOL, "Amol"))


def audit_context(dsn: str, expense_id: int) -> tuple:
    with sql(dsn) as cur:
        cur.execute(
            "select request_id, client_addr from public.audit_log "
            "where action = 'expense.create' and target_id = %s",
            (expense_id,),
        )
        return cur.fetchone()


# --------------------------------------------------------------------------------------
# 4. Audit context written straight through PostgREST
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("request_id", "stored_id"),
    [("probe-1.a_B", "probe-1.a_B"), ("forged id; <b>", None), ("x" * 129, None)],
)
def test_a_direct_postgrest_write_cannot_choose_its_audit_address_or_id(
    fresh_db, request_id, stored_id
):
    response = httpx.post(
        f"{rest()}/expenses",
        headers={
            **user_headers(ALOK),
            "Prefer": "return=representation",
            "X-Forwarded-For": "6.6.6.6",
            "X-Client-Address": "7.7.7.7",  # counts only from the service role (the gateway)
            "X-Request-ID": request_id,
        },
        json={"user_id": ALOK, "category_id": 1, "amount": 5, "date": "2025-03-03"},
    )
    assert response.status_code == 201, response.text
    stored = audit_context(fresh_db, response.json()[0]["id"])
    # the address nginx (the proxy in front of PostgREST) appended: the test's own
    assert stored == (stored_id, "127.0.0.1")


async def test_the_gateway_still_records_its_request_id_and_client(api, fresh_db, alok):
    response = await api.post(
        "/api/expenses",
        json={"amount": 5, "category_id": 1},
        headers={**alok, "X-Request-ID": "probe-gw-1", "X-Forwarded-For": "6.6.6.6"},
    )
    assert response.status_code == 201
    assert audit_context(fresh_db, response.json()["id"]) == ("probe-gw-1", "127.0.0.1")


# --------------------------------------------------------------------------------------
# 5. Amounts parsed exactly
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("amount", ["99.999999999999999999", "0.0100000000000000001", "1.005"])
async def test_amounts_with_more_than_two_decimals_are_refused_however_long(
    api,
    fresh_db,
    alok,
    amount,
):
    expense = await create(api, alok)
    before = data_state(fresh_db)
    raw = b'{"amount": ' + amount.encode() + b', "category_id": 1}'
    headers = {**alok, "Content-Type": "application/json"}
    created = await api.post("/api/expenses", content=raw, headers=headers)
    changed = await api.put(
        f"/api/expenses/{expense['id']}",
        content=b'{"amount": %s}' % amount.encode(),
        headers=headers,
    )
    for response in (created, changed):
        assert response.status_code == 400, response.text
        assert response.json() == {"error": "amount: amount may have at most 2 decimals"}
    assert data_state(fresh_db) == before


async def test_exact_amounts_are_stored_as_sent(api, fresh_db, alok):
    headers = {**alok, "Content-Type": "application/json"}
    for raw, stored in ((b"12.50", 12.5), (b"1e2", 100), (b"0.010000", 0.01)):
        response = await api.post(
            "/api/expenses", content=b'{"amount": %s, "category_id": 1}' % raw, headers=headers
        )
        assert response.status_code == 201, response.text
        assert response.json()["expense"]["amount"] == stored


# --------------------------------------------------------------------------------------
# 7. /metrics in prod
# --------------------------------------------------------------------------------------
async def test_public_metrics_in_prod_is_an_explicit_choice_warned_about(fresh_db, capsys):
    settings = stack_settings(environment="prod", registration_mode="invite", metrics_public=True)
    async with app_client(settings) as client:
        assert (await client.get("/metrics")).status_code == 200
    warnings = start_warnings(capsys.readouterr().err)
    assert any(w.startswith("METRICS_PUBLIC=true in prod") for w in warnings), warnings


# --------------------------------------------------------------------------------------
# 9. Formula triggers in the CSV export
# --------------------------------------------------------------------------------------
TRIGGERS = [
    "\uff1d1+1",  # fullwidth =
    "\uff0bcmd",
    "\uff0d1",
    "\uff20SUM(A1)",
    "\ufe661+1",  # small equals
    " =1+1",
    "\t=1+1",
    "\n=1+1",
    "\u00a0=1+1",
    "\u200b=1+1",
    "\ufeff=1+1",
    "\u3000+1",
    " \u200b\u00a0@SUM(A1)",
    "\t123",
    "\r123",
    "=1+1",
    "-1",
]
PLAIN = [" plain text", "\u00a0groceries", "1+1=2", "a=b", "\u200bzero width first"]


async def test_export_neutralises_formula_triggers_after_invisible_characters(
    api,
    fresh_db,
    alok,
):
    with sql(fresh_db) as cur:
        for text in TRIGGERS + PLAIN:
            cur.execute(
                "insert into public.expenses (user_id, category_id, amount, date, description) "
                "values (1, 1, 1, '2025-01-10', %s)",
                (text,),
            )
    response = await api.get("/api/expenses/export.csv", headers=alok)
    assert response.status_code == 200
    cells = [row[6] for row in csv.reader(io.StringIO(response.text, newline=""))][1:]
    assert sorted(cells) == sorted(["'" + t for t in TRIGGERS] + PLAIN)


# --------------------------------------------------------------------------------------
# 10. The ETag tells nothing about the row
# --------------------------------------------------------------------------------------
async def test_the_etag_cannot_be_recomputed_to_learn_who_recorded_an_expense(
    api,
    fresh_db,
    alok,
    amol,
):
    expense = await create(api, amol, user_id=ALOK)  # recorded by Amol for Alok
    etag = (await api.get(f"/api/expenses/{expense['id']}", headers=alok)).headers["etag"]
    with sql(fresh_db) as cur:  # the probe's offline attack: every candidate recorder
        cur.execute(
            "select array_agg(md5((to_jsonb(e) || jsonb_build_object('created_by', c))::text)) "
            "from public.expenses e, generate_series(1, 4) c where e.id = %s",
            (expense["id"],),
        )
        candidates = cur.fetchone()[0]
    assert etag.strip('"') not in candidates
    changed = await api.put(
        f"/api/expenses/{expense['id']}", json={"amount": 2}, headers={**alok, "If-Match": etag}
    )
    assert changed.status_code == 200 and changed.headers["etag"] != etag


# --------------------------------------------------------------------------------------
# 11. One spelling per path
# --------------------------------------------------------------------------------------
async def test_a_trailing_slash_is_404_without_a_redirect(api, fresh_db, alok):
    expense = await create(api, alok)
    for path in (f"/api/expenses/{expense['id']}/", "/api/expenses/", "/api/categories/"):
        response = await api.get(path, headers={**alok, "Host": "evil.example"})
        assert response.status_code == 404, path
        assert response.json() == {"error": "Not found"}
        assert "location" not in response.headers


@pytest.mark.parametrize("escape", ["%2f", "%2F", "%31", "%5c"])
async def test_percent_escapes_in_the_path_never_reach_another_path(
    api,
    fresh_db,
    alok,
    escape,
):
    expense = await create(api, alok)
    before = data_state(fresh_db)
    target = f"/api/expenses/{expense['id']}{escape}"
    responses = [
        await api.put(target, json={"amount": 7}, headers=alok),
        await api.delete(target, headers=alok),
        await api.get(target, headers=alok),
        await api.get(f"/api/dashboard/1{escape}monthly", headers=alok),
    ]
    for response in responses:
        assert response.status_code == 404, response.request.url
        assert response.json() == {"error": "Not found"}
    assert data_state(fresh_db) == before


# --------------------------------------------------------------------------------------
# 12. Contract details
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("spelling", ['"1"', "2.0", "1e0", "true"])
@pytest.mark.parametrize("field", ["category_id", "user_id", "payment_method_id"])
async def test_ids_in_bodies_are_json_integers_only(api, fresh_db, alok, field, spelling):
    expense = await create(api, alok)
    before = data_state(fresh_db)
    headers = {**alok, "Content-Type": "application/json"}
    body = json.dumps({"amount": 1, "category_id": 1}).replace("}", f', "{field}": X}}')
    raw = body.replace("X", spelling).encode()
    for response in (
        await api.post("/api/expenses", content=raw, headers=headers),
        await api.put(f"/api/expenses/{expense['id']}", content=raw, headers=headers),
    ):
        assert response.status_code == 400, response.text
        assert response.json() == {"error": f"{field}: Input should be a valid integer"}
    assert data_state(fresh_db) == before


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_a_body_not_declared_json_is_415(api, fresh_db, alok, content_type):
    expense = await create(api, alok)
    before = data_state(fresh_db)
    headers = {**alok, **({"Content-Type": content_type} if content_type else {})}
    body = b'{"amount": 3, "category_id": 1}'
    for response in (
        await api.post("/api/expenses", content=body, headers=headers),
        await api.put(f"/api/expenses/{expense['id']}", content=body, headers=headers),
        await api.post(
            "/api/auth/login", content=b'{"email": "alok", "password": "x"}', headers=headers
        ),
    ):
        assert response.status_code == 415, response.text
        assert response.json() == {"error": "Content-Type must be application/json"}
    assert data_state(fresh_db) == before


async def test_two_if_match_lines_count_as_one_list(api, fresh_db, alok):
    expense = await create(api, alok)
    path = f"/api/expenses/{expense['id']}"
    current = (await api.get(path, headers=alok)).headers["etag"]
    auth = list(alok.items())
    stale_only = await api.put(
        path, json={"amount": 2}, headers=[*auth, ("If-Match", '"stale"'), ("If-Match", '"old"')]
    )
    assert stale_only.status_code == 412
    both = await api.put(
        path, json={"amount": 2}, headers=[*auth, ("If-Match", '"stale"'), ("If-Match", current)]
    )
    assert both.status_code == 200, both.text


@pytest.mark.parametrize(
    ("date", "status"),
    [("9999-12-31", 400), ("2201-01-01", 400), ("1899-12-31", 400), ("0001-01-01", 400)]
    + [("2200-12-31", 201), ("1900-01-01", 201)],
)
async def test_expense_dates_stay_within_the_years_dashboards_show(
    api,
    fresh_db,
    alok,
    date,
    status,
):
    expense = await create(api, alok)
    created = await api.post(
        "/api/expenses", json={"amount": 1, "category_id": 1, "date": date}, headers=alok
    )
    changed = await api.put(f"/api/expenses/{expense['id']}", json={"date": date}, headers=alok)
    assert (created.status_code, changed.status_code) == (status, 200 if status == 201 else 400)
    if status == 400:
        message = {"error": "date: must be between 1900-01-01 and 2200-12-31"}
        assert created.json() == message and changed.json() == message
