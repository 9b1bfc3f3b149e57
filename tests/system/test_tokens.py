"""Tokens through both doors of the real app: good ones work, bad ones are 401 (503: JWKS down)."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

import main
from tests.support.app import app_client, make_settings
from tests.support.graphql import post_graphql
from tests.support.jwks import (
    JwksServer,
    SigningKey,
    ed25519_key,
    es256_key,
    raw_hs256_token,
    rs256_key,
    sign,
    unsigned_token,
)
from tests.support.responses import assert_no_internals
from tests.support.tokens import JWT_SECRET

USER_ID = "Xq3bS7kP1zR9tY2wV8nM4cL6hJ0fD5gA"
ISSUER = AUDIENCE = "http://localhost:3000"
ED = ed25519_key("ed-1")
EC = es256_key("ec-1")
RSA = rs256_key("rsa-1")
UNPUBLISHED = ed25519_key("ed-unpublished")
OMIT = object()
GRAPHQL_VIEWER = {"query": "{ viewer { id } tasks { totalCount } }"}


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims for USER_ID as Better Auth issues them; OMIT removes a claim."""
    now = int(time.time())
    values = {"sub": USER_ID, "iat": now, "exp": now + 900, "iss": ISSUER, "aud": AUDIENCE}
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not OMIT}


def bearer(token: str) -> str:
    return f"Bearer {token}"


def now_plus(seconds: int) -> int:
    return int(time.time()) + seconds


# (case, Authorization header or None); a factory, because tokens carry the current time.
BAD_CREDENTIALS: list[tuple[str, Callable[[], str | None]]] = [
    ("no header", lambda: None),
    ("wrong scheme", lambda: "Basic dXNlcjpwYXNz"),
    ("empty token", lambda: "Bearer "),
    ("scheme only", lambda: "Bearer"),
    ("garbage", lambda: bearer("not-a.jwt-at.all")),
    ("three dots", lambda: bearer("...")),
    ("alg none", lambda: bearer(unsigned_token(claims()))),
    ("alg None", lambda: bearer(unsigned_token(claims(), alg="None"))),
    ("HS256 with RSA public key", lambda: bearer(raw_hs256_token(claims(), RSA.public_pem()))),
    ("HS256 with EC public key", lambda: bearer(raw_hs256_token(claims(), EC.public_pem()))),
    ("HS256 with OKP public key", lambda: bearer(raw_hs256_token(claims(), ED.public_pem()))),
    (
        "HS256 with RSA public key, kid named",
        lambda: bearer(raw_hs256_token(claims(), RSA.public_pem(), kid=RSA.kid)),
    ),
    ("HS256 with a wrong secret", lambda: bearer(raw_hs256_token(claims(), b"guessed-secret"))),
    ("expired", lambda: bearer(sign(claims(iat=now_plus(-7200), exp=now_plus(-3600)), ED))),
    ("nbf in the future", lambda: bearer(sign(claims(nbf=now_plus(3600)), ED))),
    ("iat beyond leeway", lambda: bearer(sign(claims(iat=now_plus(3600)), ED))),
    ("wrong iss", lambda: bearer(sign(claims(iss="https://evil.example"), ED))),
    ("wrong aud", lambda: bearer(sign(claims(aud="https://other.example"), ED))),
    ("missing sub", lambda: bearer(sign(claims(sub=OMIT), ED))),
    ("numeric sub", lambda: bearer(sign(claims(sub=12345), ED))),
    ("object sub", lambda: bearer(sign(claims(sub={"id": USER_ID}), ED))),
    ("missing exp", lambda: bearer(sign(claims(exp=OMIT), ED))),
    ("over 8 KB", lambda: bearer(sign(claims(padding="x" * 9000), ED))),
    ("unknown kid", lambda: bearer(sign(claims(), UNPUBLISHED))),
    ("published kid, other key", lambda: bearer(sign(claims(), UNPUBLISHED, kid=ED.kid))),
    ("PS512, not on the allow-list", lambda: bearer(sign(claims(), RSA, "PS512"))),
]


def published(*keys: SigningKey) -> list[dict[str, Any]]:
    return [key.public_jwk() for key in keys]


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[JwksServer]:
    with JwksServer(published(ED, EC, RSA)) as server:
        yield server


def jwks_settings(database_url: str, jwks_url: str, **auth: Any) -> main.Settings:
    """An app that accepts both an HS256 secret and the JWKS keys, with iss and aud checked."""
    settings = make_settings(
        database_url, JWT_JWKS_URL=jwks_url, JWT_ISSUER=ISSUER, JWT_AUDIENCE=AUDIENCE
    )
    return dataclasses.replace(settings, auth=dataclasses.replace(settings.auth, **auth))


@pytest.fixture
async def jwks_client(
    database_url: str, jwks_server: JwksServer
) -> AsyncIterator[httpx.AsyncClient]:
    jwks_server.mode = "up"
    async with app_client(jwks_settings(database_url, jwks_server.url)) as http:
        yield http


async def both_doors(http: httpx.AsyncClient, authorization: str | None) -> list[httpx.Response]:
    headers = {} if authorization is None else {"Authorization": authorization}
    return [
        await http.get(f"/api/{USER_ID}/tasks", headers=headers),
        await http.post("/graphql", json=GRAPHQL_VIEWER, headers=headers),
    ]


def assert_refused(response: httpx.Response, authorization: str | None, *statuses: int) -> None:
    assert response.status_code in (statuses or (401,)), response.text
    if response.status_code == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    else:
        assert int(response.headers["retry-after"]) >= 1
    token = (authorization or "").removeprefix("Bearer").strip()
    # Neither the token nor any part of it comes back.
    for part in [token, *token.split(".")]:
        if len(part) >= 8:
            assert part not in response.text
    assert USER_ID not in response.text
    assert_no_internals(response.text)


async def test_valid_tokens_are_accepted(jwks_client: httpx.AsyncClient) -> None:
    for token in [sign(claims(), ED), sign(claims(), EC), sign(claims(), RSA)]:
        for response in await both_doors(jwks_client, bearer(token)):
            assert response.status_code == 200, response.text
    hs = raw_hs256_token(claims(), JWT_SECRET.encode())
    assert all(r.status_code == 200 for r in await both_doors(jwks_client, bearer(hs)))


@pytest.mark.parametrize(
    ("case", "credentials"), BAD_CREDENTIALS, ids=[c for c, _ in BAD_CREDENTIALS]
)
async def test_bad_credentials_are_refused(
    jwks_client: httpx.AsyncClient, case: str, credentials: Callable[[], str | None]
) -> None:
    authorization = credentials()
    for response in await both_doors(jwks_client, authorization):
        assert_refused(response, authorization)


async def test_asymmetric_token_when_only_a_secret_is_configured(database_url: str) -> None:
    async with app_client(make_settings(database_url)) as http:
        for key in (RSA, EC, ED):
            authorization = bearer(sign(claims(), key))
            for response in await both_doors(http, authorization):
                assert_refused(response, authorization)


async def test_jwks_outage_keeps_cached_keys_and_fails_fast(
    database_url: str, jwks_server: JwksServer
) -> None:
    jwks_server.mode = "up"
    # Keys expire from the cache at once, so every request after the outage tries a refetch.
    settings = jwks_settings(
        database_url, jwks_server.url, jwks_cache_seconds=0, jwks_timeout_seconds=0.5
    )
    async with app_client(settings) as http:
        assert all(r.status_code == 200 for r in await both_doors(http, bearer(sign(claims(), ED))))
        for mode in ("drop", "error", "slow"):
            jwks_server.mode = mode
            fresh = bearer(sign(claims(jti=mode), ED))
            assert all(r.status_code == 200 for r in await both_doors(http, fresh)), mode
            authorization = bearer(sign(claims(), UNPUBLISHED))
            started = time.monotonic()
            for response in await both_doors(http, authorization):
                assert_refused(response, authorization, 401, 503)
            assert time.monotonic() - started < 3
    jwks_server.mode = "up"


@pytest.mark.slow
async def test_jwks_down_from_the_start_is_503_not_a_hang(
    database_url: str, jwks_server: JwksServer
) -> None:
    jwks_server.mode = "slow"
    settings = jwks_settings(database_url, jwks_server.url, jwks_timeout_seconds=0.5)
    try:
        async with app_client(settings) as http:
            authorization = bearer(sign(claims(), ED))
            started = time.monotonic()
            for response in await both_doors(http, authorization):
                assert_refused(response, authorization, 503)
            assert time.monotonic() - started < 3
    finally:
        jwks_server.mode = "up"


# Tokens as Better Auth's JWT plugin makes them, from a key set of its three key types, through
# both doors of an app that verifies issuer and audience.
ORIGIN = "http://localhost:3000"


KEYS = {"EdDSA": ed25519_key("ed-1"), "ES256": es256_key("es-1"), "RS256": rs256_key("rs-1")}


@pytest.fixture(scope="module")
def jwks() -> Iterator[JwksServer]:
    with JwksServer(key.public_jwk() for key in KEYS.values()) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def jwks_http(database_url: str, jwks: JwksServer) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        database_url, JWT_JWKS_URL=jwks.url, JWT_ISSUER=ORIGIN, JWT_AUDIENCE=ORIGIN
    )
    async with app_client(settings) as client:
        yield client


def better_auth_token(key: SigningKey, user_id: str, **overrides: Any) -> str:
    """A token shaped like Better Auth's JWT plugin makes them."""
    now = int(time.time())
    claims = {
        "iat": now,
        "iss": ORIGIN,
        "aud": ORIGIN,
        "sub": user_id,
        "exp": now + 900,
        "email": "ada@example.com",
        "name": "Ada",
        "emailVerified": True,
        "image": None,
        **overrides,
    }
    return sign(claims, key)


def better_auth_user_id() -> str:
    return uuid.uuid4().hex  # 32 characters, like Better Auth's ids


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("algorithm", list(KEYS))
async def test_jwks_tokens_work_through_both_doors(
    jwks_http: httpx.AsyncClient, algorithm: str
) -> None:
    user_id = better_auth_user_id()
    assert len(user_id) == 32
    headers = {"Authorization": bearer(better_auth_token(KEYS[algorithm], user_id))}

    created = await jwks_http.post(
        f"/api/{user_id}/tasks", json={"title": "from Better Auth"}, headers=headers
    )
    viewer = await post_graphql(
        jwks_http, "{ viewer { id } tasks { nodes { id title } } }", headers=headers
    )

    assert created.status_code == 201
    assert viewer.status_code == 200
    assert viewer.json()["data"] == {
        "viewer": {"id": user_id},
        "tasks": {"nodes": [{"id": str(created.json()["id"]), "title": "from Better Auth"}]},
    }


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    "problem",
    ["wrong-audience", "wrong-issuer", "expired", "forged-key", "unknown-kid", "wrong-user"],
)
async def test_jwks_tokens_that_do_not_verify_are_401(
    jwks_http: httpx.AsyncClient, problem: str
) -> None:
    user_id = better_auth_user_id()
    key = KEYS["EdDSA"]
    now = int(time.time())
    if problem == "wrong-audience":
        token = better_auth_token(key, user_id, aud="http://evil.example")
    elif problem == "wrong-issuer":
        token = better_auth_token(key, user_id, iss=f"{ORIGIN}/")
    elif problem == "expired":
        token = better_auth_token(key, user_id, iat=now - 1900, exp=now - 1000)
    elif problem == "forged-key":
        token = better_auth_token(ed25519_key("ed-1"), user_id)  # a published kid, another key
    elif problem == "unknown-kid":
        token = better_auth_token(ed25519_key("ed-unpublished"), user_id)
    else:
        token = better_auth_token(key, user_id)
    path_user = better_auth_user_id() if problem == "wrong-user" else user_id

    headers = {"Authorization": bearer(token)}
    rest = await jwks_http.get(f"/api/{path_user}/tasks", headers=headers)
    graph = await post_graphql(jwks_http, "{ viewer { id } }", headers=headers)

    if problem == "wrong-user":
        assert rest.status_code == 403
        assert graph.json() == {"data": {"viewer": {"id": user_id}}}
        return
    assert rest.status_code == 401
    assert rest.headers["www-authenticate"].startswith("Bearer")
    assert graph.status_code == 401
    assert graph.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
