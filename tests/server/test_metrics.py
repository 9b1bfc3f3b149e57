"""GET /metrics: request counts and latencies by route, pool gauges, outages and JWKS fetches."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from main import Settings
from tests.support.app import app_client, make_settings
from tests.support.cli import cli_environment, run_cli
from tests.support.jwks import JwksServer, ed25519_key, sign
from tests.support.tokens import JWT_SECRET

Auth = Callable[[str], dict[str, str]]


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics by name and labels."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


@pytest.mark.slow
async def test_requests_are_counted_by_route_template_operation_and_status(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    listed = labels(route="/api/{user_id}/tasks", operation="", method="GET", status="200")
    query = labels(route="/graphql", operation="Count", method="POST", status="200")
    before = await scrape(client)
    for user in ("alice", "bob", "carol"):
        await client.get(f"/api/{user}/tasks", headers=auth(user))
    await client.post(
        "/graphql",
        headers=auth("alice"),
        json={"query": "query Count { tasks(first: 1) { totalCount } }"},
    )
    after = await scrape(client)

    def grew(name: str, key: frozenset[tuple[str, str]]) -> float:
        return after[(name, key)] - before.get((name, key), 0.0)

    assert grew("taskql_http_requests_total", listed) == 3
    assert grew("taskql_http_request_duration_seconds_count", listed) == 3
    assert grew("taskql_http_requests_total", query) == 1
    assert grew("taskql_http_request_duration_seconds_bucket", query | {("le", "+Inf")}) == 1
    assert after[("taskql_db_pool_connections_in_use", labels())] == 0
    assert after[("taskql_db_pool_connections_idle", labels())] >= 1
    assert not any("alice" in value for _, key in after for _, value in key)


@pytest.mark.slow
async def test_invented_operation_names_do_not_grow_the_series_without_bound(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    for n in range(250):
        await client.post("/graphql", json={"query": f"query Op{n}x {{ __typename }}"})
    operations = {
        value for _, key in await scrape(client) for name, value in key if name == "operation"
    }
    assert len(operations) <= 202  # 200 names, "" for REST and "other"
    assert "other" in operations


@pytest.mark.slow
async def test_database_outages_are_counted(clean_database: str, auth: Auth) -> None:
    unreachable = make_settings(
        "postgresql://postgres@127.0.0.1:9/postgres", DB_CONNECT_TIMEOUT="1"
    )
    async with app_client(unreachable) as client:
        before = (await scrape(client)).get(("taskql_database_unavailable_total", labels()), 0)
        response = await client.get("/api/alice/tasks", headers=auth("alice"))
        assert response.status_code == 503
        after = await scrape(client)
    assert after[("taskql_database_unavailable_total", labels())] == before + 1


@pytest.mark.slow
async def test_jwks_fetches_are_counted(clean_database: str) -> None:
    key = ed25519_key()
    with JwksServer([key.public_jwk()]) as jwks:
        settings: Settings = make_settings(clean_database, JWT_JWKS_URL=jwks.url)
        token = sign({"sub": "alice", "exp": int(time.time()) + 60}, key)
        async with app_client(settings) as client:
            ok = ("taskql_jwks_fetches_total", labels(outcome="ok"))
            before = (await scrape(client)).get(ok, 0)
            response = await client.get(
                "/api/alice/tasks", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 200
            assert (await scrape(client))[ok] == before + 1


async def test_metrics_can_be_turned_off(clean_database: str) -> None:
    async with app_client(make_settings(clean_database, METRICS="false")) as client:
        assert (await client.get("/metrics")).status_code == 404


@pytest.mark.slow
async def test_a_missing_metrics_directory_is_created(tmp_path: Path) -> None:
    directory = tmp_path / "metrics" / "workers"
    env = cli_environment(PROMETHEUS_MULTIPROC_DIR=str(directory), JWT_SECRET=JWT_SECRET)
    status, stdout, stderr = await run_cli("token", "alice", env=env)
    assert status == 0, stderr
    assert stdout.count(".") == 2
    assert directory.is_dir()


@pytest.mark.slow
async def test_a_metrics_directory_that_cannot_be_made_is_refused_by_name(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("")
    configured = str(not_a_directory / "workers")
    env = cli_environment(PROMETHEUS_MULTIPROC_DIR=configured, JWT_SECRET=JWT_SECRET)
    status, stdout, stderr = await run_cli("token", "alice", env=env)
    assert status == 2
    assert stdout == ""
    assert f"configuration error: PROMETHEUS_MULTIPROC_DIR={configured}" in stderr
    assert "Traceback" not in stderr
