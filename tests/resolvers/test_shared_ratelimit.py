"""The rate limit shared through PostgreSQL: one limit for several instances, leases that
spare the database, and the settings that choose it."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from main import read_settings
from resolvers.ratelimit import RateLimitConfig, lease_size
from server.settings import ConfigError
from tests.support.app import make_settings, running_app

Auth = Callable[[str], dict[str, str]]
LEASES = "taskql_take_tokens"


def _count_leases(state: dict[str, Any]) -> list[int]:
    """A one-item list counting the lease statements the app sends from now on."""
    count = [0]

    def log(query: Any) -> None:
        if LEASES in query.query:
            count[0] += 1

    state["database"].log_statements(log)
    return count


async def test_two_instances_share_one_limit(clean_database: str, auth: Auth) -> None:
    # 600 per minute (10 per second), burst 100: a lease is 10 tokens.
    settings = make_settings(
        clean_database, RATE_LIMIT_PER_MINUTE="600", RATE_LIMIT_BURST="100", DB_POOL_SIZE="2"
    )
    lease = lease_size(settings.rate_limit)
    async with running_app(settings) as (first, _), running_app(settings) as (second, _):
        started = time.monotonic()
        statuses = []
        for round_ in range(150):
            # Both instances at once, as a load balancer would spread one user's requests.
            responses = await asyncio.gather(
                *(app.get("/api/alice/tasks", headers=auth("alice")) for app in (first, second))
            )
            statuses += [r.status_code for r in responses]
            if round_ == 0:
                started = time.monotonic()
        took = time.monotonic() - started

    allowed = statuses.count(200)
    assert set(statuses) == {200, 429}
    # The burst, what refilled meanwhile, and at most one lease per instance either way
    # (tokens leased but unspent, or spent after the bucket refilled).
    expected = 100 + 10 * took
    assert lease == 10
    assert expected - 2 * lease <= allowed <= expected + 2 * lease + 1, (allowed, took)


async def test_in_memory_buckets_would_allow_the_limit_per_instance(
    clean_database: str, auth: Auth
) -> None:
    # What the shared store is for: the same traffic, each instance counting for itself.
    settings = make_settings(
        clean_database,
        RATE_LIMIT_PER_MINUTE="60",
        RATE_LIMIT_BURST="20",
        RATE_LIMIT_STORE="memory",
    )
    async with running_app(settings) as (first, _), running_app(settings) as (second, _):
        statuses = [
            (await app.get("/api/alice/tasks", headers=auth("alice"))).status_code
            for _ in range(30)
            for app in (first, second)
        ]

    assert 40 <= statuses.count(200) <= 42


async def test_most_requests_are_admitted_without_a_database_round_trip(
    clean_database: str, auth: Auth
) -> None:
    settings = make_settings(clean_database, RATE_LIMIT_PER_MINUTE="6000")  # leases of 100
    async with running_app(settings) as (http, state):
        leases = _count_leases(state)
        statuses = {
            (await http.get("/api/alice/tasks", headers=auth("alice"))).status_code
            for _ in range(250)
        }

    assert statuses == {200}
    assert leases[0] == 3  # 100 + 100 + 50


async def test_concurrent_requests_of_one_user_share_a_lease_request(
    clean_database: str, auth: Auth
) -> None:
    settings = make_settings(clean_database, RATE_LIMIT_PER_MINUTE="600")  # leases of 10
    async with running_app(settings) as (http, state):
        leases = _count_leases(state)
        responses = await asyncio.gather(
            *(http.get("/api/alice/tasks", headers=auth("alice")) for _ in range(25))
        )

    assert {r.status_code for r in responses} == {200}
    assert leases[0] == math.ceil(25 / 10)


@pytest.mark.parametrize("path", ["/api/alice/tasks", "/graphql"])
async def test_an_empty_bucket_is_refused_from_memory_until_its_next_token(
    clean_database: str, auth: Auth, path: str
) -> None:
    settings = make_settings(clean_database, RATE_LIMIT_PER_MINUTE="1", RATE_LIMIT_BURST="2")

    async def call(http: httpx.AsyncClient) -> httpx.Response:
        if path == "/graphql":
            query = {"query": "{ tasks { totalCount } }"}
            return await http.post(path, json=query, headers=auth("alice"))
        return await http.get(path, headers=auth("alice"))

    async with running_app(settings) as (http, state):
        allowed = [(await call(http)).status_code for _ in range(2)]
        leases = _count_leases(state)
        refused = [await call(http) for _ in range(5)]

    assert allowed == [200, 200]
    assert {r.status_code for r in refused} == {429}
    # One token a minute: the first refusal asks PostgreSQL, the others know how long to wait.
    assert leases[0] == 1
    assert all(50 <= int(r.headers["retry-after"]) <= 60 for r in refused)


async def test_an_unreachable_database_is_503_not_500(auth: Auth) -> None:
    settings = make_settings(
        "postgresql://postgres@127.0.0.1:1/nowhere",
        RATE_LIMIT_PER_MINUTE="600",
        DB_CONNECT_TIMEOUT="1",
    )
    async with running_app(settings) as (http, _):
        response = await http.get("/api/alice/tasks", headers=auth("alice"))

    assert response.status_code == 503
    assert response.headers["retry-after"]


async def test_a_lease_request_that_fails_fails_every_request_waiting_on_it(
    auth: Auth,
) -> None:
    settings = make_settings(
        "postgresql://postgres@127.0.0.1:1/nowhere",
        RATE_LIMIT_PER_MINUTE="600",
        DB_CONNECT_TIMEOUT="1",
    )
    async with running_app(settings) as (http, _):
        responses = await asyncio.gather(
            *(http.get("/api/alice/tasks", headers=auth("alice")) for _ in range(5))
        )

    assert {r.status_code for r in responses} == {503}


def test_lease_size_is_a_second_of_the_rate_within_a_quarter_of_the_burst() -> None:
    def size(per_minute: float, burst: float) -> int:
        return lease_size(RateLimitConfig(per_minute=per_minute, burst=burst, shared=True))

    assert size(600, 600) == 10
    assert size(6000, 60) == 15
    assert size(60, 20) == 1
    assert size(30, 1000) == 1
    assert size(600, 2) == 1


def test_the_store_follows_the_database() -> None:
    production = {"DATABASE_URL": "postgresql://u@db.example.com/app", "JWT_SECRET": "s" * 32}
    limit = {"RATE_LIMIT_PER_MINUTE": "600", "RATE_LIMIT_BURST": "60", "WORKERS": "4"}

    shared = read_settings({**production, **limit}).rate_limit
    in_memory = read_settings({**production, **limit, "RATE_LIMIT_STORE": "memory"}).rate_limit
    embedded = read_settings({"JWT_SECRET": "s" * 32, **limit}).rate_limit
    embedded_shared = read_settings(
        {"JWT_SECRET": "s" * 32, **limit, "RATE_LIMIT_STORE": "database"}
    ).rate_limit

    assert (shared.shared, shared.per_minute, shared.burst) == (True, 600, 60)
    assert (in_memory.shared, in_memory.per_minute, in_memory.burst) == (False, 150, 15)
    assert (embedded.shared, embedded.per_minute) == (False, 150)
    assert (embedded_shared.shared, embedded_shared.per_minute) == (True, 600)


def test_an_unknown_store_is_refused_by_name() -> None:
    env = {"JWT_SECRET": "s" * 32, "RATE_LIMIT_STORE": "redis"}

    with pytest.raises(ConfigError, match="RATE_LIMIT_STORE must be database, memory or auto"):
        read_settings(env)
