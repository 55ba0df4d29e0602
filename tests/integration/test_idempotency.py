"""POST /api/expenses with Idempotency-Key: no lost and no doubled writes.

The key and the first response are stored in Postgres in the same transaction as the row
(public.create_expense), so a retry - even one racing the original on another worker -
replays the first answer and stores nothing new.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from tests.helpers import bearer, count_rows, sql, token_for

BODY = {
    "amount": 42.5,
    "category_id": 2,
    "payment_method_id": 4,
    "description": "taxi",
    "date": "2025-03-03",
}


async def test_retry_with_same_key_and_body_replays_the_first_response(api, fresh_db, auth_headers):
    headers = {**auth_headers, "Idempotency-Key": "retry-1"}
    first = await api.post("/api/expenses", json=BODY, headers=headers)
    second = await api.post("/api/expenses", json=BODY, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert count_rows(fresh_db, "expenses") == 1
    assert count_rows(fresh_db, "idempotency_keys") == 1


async def test_same_key_with_another_body_is_409_and_stores_nothing(api, fresh_db, auth_headers):
    headers = {**auth_headers, "Idempotency-Key": "retry-2"}
    assert (await api.post("/api/expenses", json=BODY, headers=headers)).status_code == 201
    for changed in (
        {**BODY, "amount": 43},
        {**BODY, "description": "bus"},
        {**BODY, "user_id": 2},
        {k: v for k, v in BODY.items() if k != "date"},
    ):
        response = await api.post("/api/expenses", json=changed, headers=headers)
        assert response.status_code == 409, response.text
        assert response.json() == {
            "error": "Idempotency-Key was already used with a different request"
        }
    assert count_rows(fresh_db, "expenses") == 1


async def test_same_key_from_two_users_creates_two_expenses(api, fresh_db):
    for user_id, name in ((1, "Alok"), (2, "Amol")):
        headers = {**bearer(token_for(user_id, name)), "Idempotency-Key": "shared"}
        response = await api.post("/api/expenses", json=BODY, headers=headers)
        assert response.status_code == 201 and response.json()["expense"]["user_id"] == user_id
    assert count_rows(fresh_db, "expenses") == 2


async def test_without_a_key_every_post_creates_a_row(api, fresh_db, auth_headers):
    for _ in range(3):
        assert (await api.post("/api/expenses", json=BODY, headers=auth_headers)).status_code == 201
    assert count_rows(fresh_db, "expenses") == 3


async def test_failed_request_does_not_burn_its_key(api, fresh_db, auth_headers):
    headers = {**auth_headers, "Idempotency-Key": "after-a-400"}
    bad = await api.post("/api/expenses", json={**BODY, "category_id": 99}, headers=headers)
    assert bad.status_code == 400
    good = await api.post("/api/expenses", json=BODY, headers=headers)
    assert good.status_code == 201
    assert count_rows(fresh_db, "expenses") == 1


CREATES = 1000
CLIENTS = 50


async def test_1000_creates_each_retried_once_by_50_clients_store_exactly_1000_rows(
    start_server, fresh_db
):
    base = start_server(workers=2)
    tokens = [
        token_for(uid, name) for uid, name in ((1, "Alok"), (2, "Amol"), (3, "Atul"), (4, "Rashmi"))
    ]
    jobs: asyncio.Queue[int] = asyncio.Queue()
    for i in range(CREATES):
        jobs.put_nowait(i)
    results: dict[int, tuple[httpx.Response, httpx.Response]] = {}

    async def client_loop() -> None:
        # gunicorn closes a keep-alive connection idle for 5 s (keepalive = 5); on a loaded
        # machine a client could reuse one just as the server closes it (ReadError), so the
        # client gives idle connections up first.
        limits = httpx.Limits(keepalive_expiry=2)
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
            while not jobs.empty():
                i = jobs.get_nowait()
                headers = {
                    "Authorization": f"Bearer {tokens[i % 4]}",
                    "Idempotency-Key": f"load-{i}-{uuid.uuid4().hex}",
                }
                body = {
                    "amount": round(1 + i / 100, 2),
                    "category_id": 1 + i % 4,
                    "description": f"load {i}",
                    "date": f"2025-{1 + i % 12:02d}-15",
                }
                if i % 2:  # the retry races the original (a client that timed out early)
                    results[i] = await asyncio.gather(
                        client.post("/api/expenses", json=body, headers=headers),
                        client.post("/api/expenses", json=body, headers=headers),
                    )
                else:  # the retry follows the answer (a client that lost the response)
                    first = await client.post("/api/expenses", json=body, headers=headers)
                    results[i] = (
                        first,
                        await client.post("/api/expenses", json=body, headers=headers),
                    )

    started = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(CLIENTS)))
    elapsed = time.perf_counter() - started

    assert len(results) == CREATES
    statuses = [r.status_code for pair in results.values() for r in pair]
    assert statuses.count(201) == 2 * CREATES, {s: statuses.count(s) for s in set(statuses)}
    for first, retry in results.values():
        assert retry.json() == first.json()
    ids = {first.json()["id"] for first, _ in results.values()}
    assert len(ids) == CREATES
    assert count_rows(fresh_db, "expenses") == CREATES
    assert count_rows(fresh_db, "idempotency_keys") == CREATES
    with sql(fresh_db) as cur:
        cur.execute("select count(*) from public.expense_totals_drift()")
        assert cur.fetchone()[0] == 0
        cur.execute("select sum(expense_count) from public.expense_monthly_totals")
        assert cur.fetchone()[0] == CREATES
    print(
        f"\nidempotency load: {2 * CREATES} requests from {CLIENTS} clients in {elapsed:.1f}s, "
        f"{CREATES} rows expected, {count_rows(fresh_db, 'expenses')} found"
    )
