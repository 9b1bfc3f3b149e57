"""Persisted queries at /graphql: Apollo's automatic protocol over POST and GET, documents
shared through PostgreSQL, registered-only mode with deploy-time registration, and the limits."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

import main
from tests.support.app import make_settings, running_app
from tests.support.cli import cli_environment, run_cli
from tests.support.databases import empty_database
from tests.support.tokens import JWT_SECRET, hs256_token

GRAPHQL_RESPONSE = "application/graphql-response+json"


def unique_query(label: str = "Listed") -> str:
    """A valid document no other test has sent, so the store does not know it yet."""
    return f"query {label}_{uuid.uuid4().hex} {{ tasks(first: 5) {{ totalCount }} }}"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(query: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256(query)}}


def headers(user: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {hs256_token(user)}"}


async def post(
    http: httpx.AsyncClient, body: dict[str, Any], user: str | None = "alice"
) -> httpx.Response:
    return await http.post("/graphql", json=body, headers=headers(user) if user else {})


async def get(http: httpx.AsyncClient, query: str, *, with_query: bool = False) -> httpx.Response:
    params = {"extensions": json.dumps(persisted(query))}
    if with_query:
        params["query"] = query
    return await http.get("/graphql", params=params, headers=headers())


async def stored(url: str, query: str) -> str | None:
    """The kind of the stored document (automatic, deployed), None when it is not stored."""
    conn = await asyncpg.connect(url)
    try:
        kind: str | None = await conn.fetchval(
            "SELECT kind FROM persisted_documents WHERE hash = $1", sha256(query)
        )
    finally:
        await conn.close()
    return kind


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    [error] = response.json()["errors"]
    return response.status_code, error["extensions"]["code"], error["message"]


NOT_FOUND = (200, "PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
DATA = {"data": {"tasks": {"totalCount": 0}}}


async def test_the_automatic_protocol_over_post(
    client: httpx.AsyncClient, database_url: str
) -> None:
    query = unique_query()

    miss = await post(client, {"extensions": persisted(query)})
    registered = await post(client, {"query": query, "extensions": persisted(query)})
    hit = await post(client, {"extensions": persisted(query)})

    assert error_of(miss) == NOT_FOUND
    # A miss is no answer to keep: a cache between client and server must ask again.
    assert miss.headers["cache-control"] == "no-store"
    assert miss.headers["content-type"] == GRAPHQL_RESPONSE
    assert (registered.status_code, registered.json()) == (200, DATA)
    assert (hit.status_code, hit.json()) == (200, DATA)
    assert await stored(database_url, query) == "automatic"


async def test_the_automatic_protocol_over_get(client: httpx.AsyncClient) -> None:
    query = unique_query()

    miss = await get(client, query)
    registered = await get(client, query, with_query=True)
    hit = await get(client, query)

    assert error_of(miss) == NOT_FOUND
    assert (registered.status_code, registered.json()) == (200, DATA)
    assert (hit.status_code, hit.json()) == (200, DATA)


async def test_a_mutation_by_hash_is_refused_over_get(client: httpx.AsyncClient) -> None:
    mutation = f"mutation M_{uuid.uuid4().hex} {{ deleteTasks(all: ALL_TASKS) {{ count }} }}"
    await post(client, {"query": mutation, "extensions": persisted(mutation)})

    response = await client.get(
        "/graphql", params={"extensions": json.dumps(persisted(mutation))}, headers=headers()
    )

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


async def test_a_hash_that_is_not_the_querys_is_refused_and_nothing_stored(
    client: httpx.AsyncClient, database_url: str
) -> None:
    query, other = unique_query(), unique_query()

    response = await post(client, {"query": query, "extensions": persisted(other)})

    assert error_of(response)[:2] == (400, "BAD_REQUEST")
    assert "not the SHA-256 of the query" in error_of(response)[2]
    assert await stored(database_url, query) is None
    assert await stored(database_url, other) is None


@pytest.mark.parametrize(
    ("extensions", "message"),
    [
        ([], "`extensions` must be an object"),
        ({"persistedQuery": {"version": 2, "sha256Hash": "0" * 64}}, "version 1"),
        ({"persistedQuery": {"version": 1, "sha256Hash": "xyz"}}, "64 hexadecimal digits"),
        ({"persistedQuery": "abc"}, "version 1"),
    ],
)
async def test_a_malformed_persisted_query_is_a_bad_request(
    client: httpx.AsyncClient, extensions: Any, message: str
) -> None:
    response = await post(client, {"extensions": extensions})

    status, code, text = error_of(response)
    assert (status, code) == (400, "BAD_REQUEST")
    assert message in text


async def test_without_a_query_or_a_persisted_query_the_request_is_refused(
    client: httpx.AsyncClient,
) -> None:
    response = await post(client, {"extensions": {"tracing": True}})

    assert error_of(response) == (400, "BAD_REQUEST", "`query` must be a string")


async def test_anonymous_and_invalid_documents_are_not_stored(
    client: httpx.AsyncClient, database_url: str
) -> None:
    query = unique_query()
    invalid = f"query Q_{uuid.uuid4().hex} {{ tasks {{ nope }} }}"

    anonymous = await post(client, {"query": query, "extensions": persisted(query)}, user=None)
    rejected = await post(client, {"query": invalid, "extensions": persisted(invalid)})

    assert anonymous.status_code == 401
    assert rejected.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert await stored(database_url, query) is None
    assert await stored(database_url, invalid) is None


async def test_a_document_learnt_by_one_instance_is_known_to_another(clean_database: str) -> None:
    query = unique_query()
    settings = make_settings(clean_database)
    async with (
        running_app(settings) as (first, _),
        running_app(settings) as (second, _),
    ):
        await post(first, {"query": query, "extensions": persisted(query)})
        hit = await post(second, {"extensions": persisted(query)})

    assert (hit.status_code, hit.json()) == (200, DATA)


@pytest.mark.slow
async def test_the_store_takes_at_most_its_maximum_of_automatic_documents(
    clean_database: str, admin_database_url: str
) -> None:
    from tests.support.databases import create_migrated_database, drop_database

    # A database of its own: the session's holds other tests' documents.
    name = f"taskql_persisted_{uuid.uuid4().hex[:12]}"
    url = await create_migrated_database(admin_database_url, name)
    try:
        settings = make_settings(url, GRAPHQL_PERSISTED_MAX_DOCUMENTS="2")
        queries = [unique_query() for _ in range(3)]
        async with running_app(settings) as (http, _):
            answers = [
                await post(http, {"query": query, "extensions": persisted(query)})
                for query in queries
            ]
            last = await post(http, {"extensions": persisted(queries[2])})
            first = await post(http, {"extensions": persisted(queries[0])})
        # The third still runs; it is only not kept, so its hash alone is not found.
        assert [answer.json() for answer in answers] == [DATA] * 3
        assert error_of(last) == NOT_FOUND
        assert first.json() == DATA
    finally:
        await drop_database(admin_database_url, name)


@pytest.mark.slow
async def test_one_user_cannot_fill_the_store_alone(
    client: httpx.AsyncClient, database_url: str
) -> None:
    from resolvers.documents import REGISTRATION_BURST

    user = f"filler-{uuid.uuid4().hex[:8]}"
    queries = [unique_query() for _ in range(REGISTRATION_BURST + 1)]
    for query in queries:
        response = await post(client, {"query": query, "extensions": persisted(query)}, user)
        assert response.json() == DATA

    assert await stored(database_url, queries[-2]) == "automatic"
    assert await stored(database_url, queries[-1]) is None
    # Someone else still can.
    other = unique_query()
    await post(client, {"query": other, "extensions": persisted(other)}, user="someone-else")
    assert await stored(database_url, other) == "automatic"


async def test_off_answers_a_hash_alone_with_not_supported(clean_database: str) -> None:
    query = unique_query()
    settings = make_settings(clean_database, GRAPHQL_PERSISTED_QUERIES="off")
    async with running_app(settings) as (http, _):
        alone = await post(http, {"extensions": persisted(query)})
        with_query = await post(http, {"query": query, "extensions": persisted(query)})

    assert error_of(alone) == (200, "PERSISTED_QUERY_NOT_SUPPORTED", "PersistedQueryNotSupported")
    assert with_query.json() == DATA


# Registered-only mode and deploy-time registration.


def apollo_manifest(*queries: str) -> dict[str, Any]:
    """What @apollo/generate-persisted-query-manifest writes."""
    return {
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [
            {"id": sha256(q), "name": q.split()[1], "type": "query", "body": q} for q in queries
        ],
    }


async def register(url: str, manifest: Any, tmp_path: Path) -> tuple[int, str, str]:
    path = tmp_path / f"manifest-{uuid.uuid4().hex}.json"
    path.write_text(json.dumps(manifest))
    env = cli_environment(DATABASE_URL=url, JWT_SECRET=JWT_SECRET)
    return await run_cli("documents", "register", str(path), env=env)


@pytest.fixture
async def registered_only(clean_database: str) -> main.Settings:
    return make_settings(clean_database, GRAPHQL_PERSISTED_QUERIES="registered")


@pytest.mark.slow
async def test_registered_only_runs_registered_documents_alone(
    registered_only: main.Settings, clean_database: str, tmp_path: Path
) -> None:
    known, learnt, unknown = unique_query(), unique_query(), unique_query()
    status, out, err = await register(clean_database, apollo_manifest(known), tmp_path)
    assert (status, err) == (0, "")
    assert "registered 1 documents (1 new)" in out
    async with running_app(make_settings(clean_database)) as (automatic, _):
        # Learnt automatically by an instance in the default mode: not trusted.
        await post(automatic, {"query": learnt, "extensions": persisted(learnt)})
    async with running_app(registered_only) as (http, _):
        by_hash = await post(http, {"extensions": persisted(known)})
        in_full = await post(http, {"query": known})
        unknown_hash = await post(http, {"extensions": persisted(unknown)})
        unknown_retry = await post(http, {"query": unknown, "extensions": persisted(unknown)})
        unknown_query = await post(http, {"query": unknown})
        learnt_hash = await post(http, {"extensions": persisted(learnt)})
        # Registered while this instance runs (and has seen it as not deployed): it runs now.
        assert (await register(clean_database, apollo_manifest(learnt), tmp_path))[0] == 0
        learnt_registered = await post(http, {"extensions": persisted(learnt)})

    assert by_hash.json() == in_full.json() == learnt_registered.json() == DATA
    assert error_of(unknown_hash) == error_of(learnt_hash) == NOT_FOUND
    for refused in (unknown_retry, unknown_query):
        status, code, message = error_of(refused)
        assert (status, code) == (400, "PERSISTED_QUERY_NOT_REGISTERED")
        assert "documents register" in message
    assert await stored(clean_database, unknown) is None
    assert await stored(clean_database, known) == "deployed"


@pytest.mark.slow
async def test_registration_reads_codegen_manifests_and_is_repeatable(
    clean_database: str, tmp_path: Path
) -> None:
    learnt, fresh = unique_query(), unique_query()
    async with running_app(make_settings(clean_database)) as (http, _):
        await post(http, {"query": learnt, "extensions": persisted(learnt)})
    manifest = {sha256(learnt): learnt, sha256(fresh): fresh}

    first = await register(clean_database, manifest, tmp_path)
    again = await register(clean_database, manifest, tmp_path)

    # The automatically learnt one becomes a deployed one: both count as new the first time.
    assert first[0] == again[0] == 0
    assert "registered 2 documents (2 new)" in first[1]
    assert "registered 2 documents (0 new)" in again[1]
    assert await stored(clean_database, learnt) == await stored(clean_database, fresh) == "deployed"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({"0" * 64: "query A { viewer { id } }"}, "the id is not the SHA-256 of the body"),
        (
            {sha256("query B { nope }"): "query B { nope }"},
            "does not validate against this server's schema",
        ),
        (["query C { viewer { id } }"], "not a manifest"),
        ({"format": "apollo-persisted-query-manifest", "operations": 3}, "list of operations"),
    ],
)
async def test_a_manifest_that_cannot_be_registered_stores_nothing(
    clean_database: str, tmp_path: Path, manifest: Any, message: str
) -> None:
    valid = unique_query()
    if isinstance(manifest, dict) and "format" not in manifest:
        manifest = {**manifest, sha256(valid): valid}

    status, _, err = await register(clean_database, manifest, tmp_path)

    assert status == 2
    assert message in err
    assert "Traceback" not in err
    assert await stored(clean_database, valid) is None


@pytest.mark.slow
async def test_registering_a_file_that_is_not_json_says_so(
    clean_database: str, tmp_path: Path
) -> None:
    path = tmp_path / "manifest.json"
    path.write_text("{not json")
    env = cli_environment(DATABASE_URL=clean_database, JWT_SECRET=JWT_SECRET)

    status, _, err = await run_cli("documents", "register", str(path), env=env)
    missing = await run_cli("documents", "register", str(tmp_path / "absent.json"), env=env)

    assert (status, missing[0]) == (2, 2)
    assert "cannot register" in err
    assert "No such file" in missing[2]


@pytest.mark.slow
async def test_registering_into_a_database_without_the_migrations_says_what_to_run(
    admin_database_url: str, tmp_path: Path
) -> None:
    query = unique_query()
    async with empty_database(admin_database_url, "taskql_unmigrated") as url:
        status, _, err = await register(url, {sha256(query): query}, tmp_path)

    assert status == 1
    assert "taskql migrate" in err
    assert "Traceback" not in err


def test_an_unknown_mode_is_refused_at_start() -> None:
    with pytest.raises(main.ConfigError, match="GRAPHQL_PERSISTED_QUERIES must be"):
        make_settings("postgresql://nowhere/x", GRAPHQL_PERSISTED_QUERIES="sometimes")
