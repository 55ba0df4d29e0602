"""/metrics: exact counts across gunicorn workers, the operator token, and what is measured.

The multi-worker test runs the Procfile's gunicorn with two workers and TMPDIR pointed at
the test's own directory, so the per-start metrics directory gunicorn.conf.py creates can be
inspected (each worker's own counter file shows that both served) and shown to be removed
when the server stops.
"""

from __future__ import annotations

import asyncio
import glob
from pathlib import Path

import httpx
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

import deps
from tests.helpers import app_client, bearer, gunicorn_server, stack_settings

OPS = "metrics-test-operator-token"
CATEGORIES_OK = (
    "ffb_http_requests_total",
    {"route": "/api/categories", "method": "GET", "status": "200"},
)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, labels: dict[str, str] | None = None, /, **more: str) -> float:
    wanted = {**(labels or {}), **more}
    return samples(text).get((name, tuple(sorted(wanted.items()))), 0.0)


async def scrape(client: httpx.AsyncClient, token: str | None = OPS) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def fresh_connection_get(base: str, path: str) -> int:
    """One request on its own connection, so the kernel may hand it to either worker."""
    async with httpx.AsyncClient(
        base_url=base, timeout=20, limits=httpx.Limits(max_keepalive_connections=0)
    ) as client:
        return (await client.get(path)).status_code


def per_worker(directory: Path, name: str, labels: dict[str, str]) -> dict[str, float]:
    """The counter's value in each worker's own file (pid -> value)."""
    found = {}
    for path in glob.glob(str(directory / "counter_*.db")):
        pid = Path(path).stem.removeprefix("counter_")
        for metric in MultiProcessCollector.merge([path]):
            for s in metric.samples:
                if s.name == name and s.labels == labels:
                    found[pid] = s.value
    return found


async def test_n_requests_over_two_workers_add_exactly_n(fresh_db, tmp_path):
    n = 60
    env = {"TMPDIR": str(tmp_path), "METRICS_TOKEN": OPS, "WEB_CONCURRENCY": "2"}
    with gunicorn_server(env, workers=2) as base:
        [directory] = [Path(p) for p in glob.glob(str(tmp_path / "ffb-metrics-*"))]
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            before = value(await scrape(client), *CATEGORIES_OK)
            for start in range(0, n, 10):  # ten at a time, each on a new connection
                statuses = await asyncio.gather(
                    *(
                        fresh_connection_get(base, "/api/categories")
                        for _ in range(min(10, n - start))
                    )
                )
                assert statuses == [200] * len(statuses)
            after = await scrape(client)
            assert (await client.get("/metrics")).status_code == 401  # the token is required
        assert value(after, *CATEGORIES_OK) - before == n
        workers = per_worker(directory, *CATEGORIES_OK)
        assert len([v for v in workers.values() if v > 0]) == 2, workers  # both served
        assert sum(workers.values()) == value(after, *CATEGORIES_OK)
        # latency histogram by route template, counting the same requests
        assert (
            value(
                after,
                "ffb_http_request_duration_seconds_count",
                route="/api/categories",
                method="GET",
            )
            - before
            == n
        )
    assert not directory.exists(), "the metrics directory must not outlive the server"


async def test_a_new_server_start_begins_from_zero(fresh_db, tmp_path):
    env = {"TMPDIR": str(tmp_path), "WEB_CONCURRENCY": "2"}
    for _ in range(2):
        with gunicorn_server(env, workers=2) as base:
            async with httpx.AsyncClient(base_url=base, timeout=20) as client:
                for _ in range(3):
                    assert (await client.get("/api/categories")).status_code == 200
                text = await scrape(client, token=None)  # no METRICS_TOKEN: open
        assert value(text, *CATEGORIES_OK) == 3
    assert glob.glob(str(tmp_path / "ffb-metrics-*")) == []


async def test_routes_are_labelled_by_template_and_unknown_paths_share_one_label(fresh_db):
    auth = bearer()
    async with app_client(stack_settings()) as client:
        before = await scrape(client, token=None)
        for user_id in (1, 2, 3):
            response = await client.get(
                f"/api/dashboard/{user_id}/monthly?year=2025&month=1", headers=auth
            )
            assert response.status_code == 200
        for path in ("/nope", "/api/secret-123", "/wp-admin.php"):
            assert (await client.get(path)).status_code == 404
        after = await scrape(client, token=None)
    monthly = {"route": "/api/dashboard/{user_id}/monthly", "method": "GET", "status": "200"}
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    assert (
        value(after, "ffb_http_requests_total", **monthly)
        - value(before, "ffb_http_requests_total", **monthly)
        == 3
    )
    assert (
        value(after, "ffb_http_requests_total", **unmatched)
        - value(before, "ffb_http_requests_total", **unmatched)
        == 3
    )
    assert "/api/dashboard/1/monthly" not in after and "wp-admin" not in after


async def test_postgrest_cache_bcrypt_and_rate_limit_metrics_move(fresh_db):
    login = {"email": "alok@example.com", "password": "wrong-password"}
    settings = stack_settings(
        rate_limit_enabled=True, login_rate_limit="2/minute", reference_cache_ttl_seconds=60
    )
    async with app_client(settings) as client:
        before = await scrape(client, token=None)
        await client.get("/api/categories")
        await client.get("/api/categories")
        statuses = [
            (await client.post("/api/auth/login", json=login)).status_code for _ in range(3)
        ]
        after = await scrape(client, token=None)
    assert statuses == [401, 401, 429]

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("ffb_reference_cache_requests_total", table="categories", result="miss") == 1
    assert delta("ffb_reference_cache_requests_total", table="categories", result="hit") == 1
    assert delta("ffb_rate_limit_rejections_total", limit="login") == 1
    assert delta("ffb_postgrest_request_duration_seconds_count", outcome="ok") >= 4
    assert value(after, "ffb_bcrypt_queue_length") == 0  # nothing left waiting
    assert "ffb_bcrypt_queue_length" in after


async def test_unreachable_postgrest_counts_503s_and_failures(fresh_db):
    settings = stack_settings(supabase_url="http://127.0.0.1:9", reference_cache_ttl_seconds=0)
    async with app_client(settings) as client:
        # PostgREST was never reached, so revocation was never proven and authenticated
        # routes would answer 503 without calling it (readiness.py); pretend it was, so the
        # dashboard below reaches the pass-through path this test measures
        deps.app_state(client.app).revocation.proven = True
        before = await scrape(client, token=None)
        assert (await client.get("/api/categories")).status_code == 503
        # the dashboards' pass-through path is measured as well
        assert (
            await client.get("/api/dashboard/1/yearly?year=2025", headers=bearer())
        ).status_code == 503
        after = await scrape(client, token=None)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("ffb_unavailable_responses_total", route="/api/categories") == 1
    assert delta("ffb_unavailable_responses_total", route="/api/dashboard/{user_id}/yearly") == 1
    assert delta("ffb_postgrest_failures_total", kind="unavailable") == 2
    assert (
        delta("ffb_http_requests_total", route="/api/categories", method="GET", status="503") == 1
    )


async def test_metrics_token_is_compared_exactly(fresh_db):
    async with app_client(stack_settings(metrics_token=OPS)) as client:
        for header in (
            {},
            {"Authorization": "Bearer " + OPS[:-1]},
            {"Authorization": OPS},
            {"Authorization": "Basic " + OPS},
        ):
            response = await client.get("/metrics", headers=header)
            assert response.status_code == 401
            assert response.json() == {"error": "Operator token required"}
        assert "ffb_http_requests_total" in await scrape(client)
