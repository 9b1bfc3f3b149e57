"""Per-user rate limiting through both doors: 429 with Retry-After, per user, refilling."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from main import read_settings
from resolvers.errors import RateLimited
from resolvers.ratelimit import RateLimitConfig, RateLimiter
from tests.support.app import app_client, make_settings

Auth = Callable[[str], dict[str, str]]
QUERY = {"query": "{ tasks { totalCount } }"}


async def rest_call(http: httpx.AsyncClient, auth: Auth, user: str) -> httpx.Response:
    return await http.get(f"/api/{user}/tasks", headers=auth(user))


async def graphql_call(http: httpx.AsyncClient, auth: Auth, user: str) -> httpx.Response:
    return await http.post("/graphql", json=QUERY, headers=auth(user))


DOORS = [pytest.param(rest_call, id="rest"), pytest.param(graphql_call, id="graphql")]
Call = Callable[[httpx.AsyncClient, Auth, str], Awaitable[httpx.Response]]


@pytest.mark.parametrize("call", DOORS)
async def test_over_the_limit_is_429_with_retry_after(
    clean_database: str, auth: Auth, call: Call
) -> None:
    settings = make_settings(clean_database, RATE_LIMIT_PER_MINUTE="2", RATE_LIMIT_BURST="3")
    async with app_client(settings) as http:
        allowed = [await call(http, auth, "alice") for _ in range(3)]
        refused = await call(http, auth, "alice")
        other_user = await call(http, auth, "bob")

    assert [r.status_code for r in allowed] == [200, 200, 200]
    assert refused.status_code == 429
    # One token every 30 s at 2 per minute.
    assert 1 <= int(refused.headers["retry-after"]) <= 30
    if call is rest_call:
        assert refused.json() == {
            "detail": "Too many requests; retry after the Retry-After seconds"
        }
    else:
        assert refused.headers["content-type"] == "application/graphql-response+json"
        [error] = refused.json()["errors"]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert "data" not in refused.json()
    assert other_user.status_code == 200


@pytest.mark.parametrize("call", DOORS)
async def test_tokens_refill_over_time(clean_database: str, auth: Auth, call: Call) -> None:
    # 600 per minute is one token every 100 ms.
    settings = make_settings(clean_database, RATE_LIMIT_PER_MINUTE="600", RATE_LIMIT_BURST="1")
    async with app_client(settings) as http:
        # Sent at once, so that a slow machine cannot refill the bucket between them.
        burst = await asyncio.gather(*(call(http, auth, "alice") for _ in range(5)))
        await asyncio.sleep(0.2)
        after_refill = await call(http, auth, "alice")

    assert 429 in {r.status_code for r in burst}
    assert {r.headers["retry-after"] for r in burst if r.status_code == 429} == {"1"}
    assert after_refill.status_code == 200


async def test_no_limit_by_default(client: httpx.AsyncClient, auth: Auth) -> None:
    responses = [await rest_call(client, auth, "alice") for _ in range(50)]

    assert {r.status_code for r in responses} == {200}


async def test_anonymous_requests_are_not_counted(clean_database: str, auth: Auth) -> None:
    settings = make_settings(clean_database, RATE_LIMIT_PER_MINUTE="1", RATE_LIMIT_BURST="1")
    async with app_client(settings) as http:
        anonymous = [await http.get("/api/alice/tasks") for _ in range(3)]
        authenticated = await rest_call(http, auth, "alice")

    assert {r.status_code for r in anonymous} == {401}
    assert authenticated.status_code == 200


def test_settings_share_the_limit_among_workers() -> None:
    # With the buckets in memory; the database store (the default with DATABASE_URL) applies
    # the whole limit in every worker: tests/resolvers/test_shared_ratelimit.py.
    env = {
        "DATABASE_URL": "postgresql://u@db.example.com/app",
        "JWT_SECRET": "s" * 32,
        "RATE_LIMIT_STORE": "memory",
    }

    assert not read_settings(env).rate_limit.enabled
    single = read_settings({**env, "RATE_LIMIT_PER_MINUTE": "600"}).rate_limit
    shared = read_settings(
        {**env, "RATE_LIMIT_PER_MINUTE": "600", "RATE_LIMIT_BURST": "60", "WORKERS": "4"}
    ).rate_limit

    assert (single.per_minute, single.burst) == (600, 600)
    assert (shared.per_minute, shared.burst) == (150, 15)


def test_the_least_recently_seen_users_are_forgotten_beyond_max_users() -> None:
    now = [0.0]
    limiter = RateLimiter(RateLimitConfig(per_minute=1, burst=1, max_users=2), clock=lambda: now[0])
    limiter.take("alice")
    limiter.take("bob")
    with pytest.raises(RateLimited):
        limiter.take("alice")

    limiter.take("carol")  # alice was seen again since bob: bob is the one forgotten

    with pytest.raises(RateLimited):
        limiter.take("alice")
    limiter.take("bob")
