"""Real clients over a real socket: gql (HTTP transport) for GraphQL, httpx for legacy REST."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator

import httpx
import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport

import main
from tests.support.cli import PROJECT_DIR
from tests.support.live import live_server
from tests.support.tokens import hs256_token

pytestmark = pytest.mark.slow

EXAMPLES = PROJECT_DIR / "examples"

Auth = Callable[[str], dict[str, str]]

CREATE = """
    mutation Create($title: String!) {
      createTask(input: { title: $title }) {
        task { id title completed version }
        userErrors { field message code }
      }
    }
"""
LIST = GraphQLRequest("query MyTasks { tasks(first: 10) { totalCount nodes { id title } } }")


@pytest.fixture
def live_url(settings: main.Settings) -> Iterator[str]:
    with live_server(settings) as url:
        yield url


def create(title: str) -> GraphQLRequest:
    return GraphQLRequest(CREATE, variable_values={"title": title})


def gql_client(live_url: str, headers: dict[str, str]) -> Client:
    transport = HTTPXAsyncTransport(url=f"{live_url}/graphql", headers=headers)
    return Client(transport=transport)


async def test_gql_runs_a_mutation_and_a_query(live_url: str, auth: Auth) -> None:
    async with gql_client(live_url, auth("alice")) as session:
        created = await session.execute(create("Buy milk"))
        listed = await session.execute(LIST)
    payload = created["createTask"]
    assert payload["userErrors"] == []
    assert payload["task"]["title"] == "Buy milk"
    assert payload["task"]["version"] == 1
    assert listed["tasks"]["totalCount"] == 1
    assert listed["tasks"]["nodes"] == [{"id": payload["task"]["id"], "title": "Buy milk"}]


async def test_gql_sees_expected_failures_as_user_errors(live_url: str, auth: Auth) -> None:
    async with gql_client(live_url, auth("alice")) as session:
        result = await session.execute(create("   "))
    assert result["createTask"]["task"] is None
    [error] = result["createTask"]["userErrors"]
    assert error["field"] == ["input", "title"]
    assert error["code"] == "STRING_TOO_SHORT"


async def test_gql_raises_on_errors_with_their_codes(live_url: str) -> None:
    headers = {"Authorization": "Bearer not-a-token", "X-Request-ID": "gql-client-1"}
    async with gql_client(live_url, headers) as session:
        with pytest.raises(TransportQueryError) as rejected:
            await session.execute(LIST)
        assert session.transport.response_headers["x-request-id"] == "gql-client-1"
    assert rejected.value.errors is not None
    assert rejected.value.errors[0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_gql_reports_validation_errors(live_url: str, auth: Auth) -> None:
    async with gql_client(live_url, auth("alice")) as session:
        with pytest.raises(TransportQueryError) as rejected:
            await session.execute(GraphQLRequest("{ tasks(first: 1) { nope } }"))
    assert rejected.value.errors is not None
    assert rejected.value.errors[0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_httpx_as_a_legacy_rest_client_with_etags(live_url: str, auth: Auth) -> None:
    async with httpx.AsyncClient(base_url=live_url, headers=auth("alice")) as rest:
        created = await rest.post("/api/alice/tasks", json={"title": "Write report"})
        assert created.status_code == 201
        location, etag = created.headers["location"], created.headers["etag"]
        assert etag == '"1"'

        updated = await rest.put(
            location, json={"title": "Write the report"}, headers={"If-Match": etag}
        )
        assert updated.status_code == 200
        assert updated.headers["etag"] == '"2"'

        stale = await rest.put(location, json={"title": "Lost update"}, headers={"If-Match": etag})
        assert stale.status_code == 412
        assert stale.json()["current_version"] == 2

        toggled = await rest.patch(f"{location}/complete", headers={"If-Match": '"2"'})
        assert toggled.json()["completed"] is True

        listed = await rest.get("/api/alice/tasks")
        assert [task["title"] for task in listed.json()] == ["Write the report"]
        assert (await rest.get("/api/bob/tasks")).status_code == 403

        deleted = await rest.delete(location, headers={"If-Match": toggled.headers["etag"]})
        assert deleted.status_code == 204
        assert (await rest.get(location)).status_code == 404


async def test_the_examples_run_against_the_server(live_url: str) -> None:
    token = hs256_token("example-user")
    env = {**os.environ, "TASKQL_URL": live_url}
    python = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(EXAMPLES / "gql_client.py"), token],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert python.returncode == 0, python.stderr
    assert "Try taskql" in python.stdout
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: examples/fetch.js not run")
    script = (
        f"const {{ taskql }} = await import({json.dumps((EXAMPLES / 'fetch.js').as_uri())});"
        f"console.log(JSON.stringify(await taskql(process.argv[1], '{{ tasks(first: 5) "
        f"{{ totalCount }} }}', {{}}, {json.dumps(live_url + '/graphql')})));"
    )
    javascript = await asyncio.to_thread(
        subprocess.run,
        [node, "--input-type=module", "-e", script, token],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert javascript.returncode == 0, javascript.stderr
    assert json.loads(javascript.stdout) == {"tasks": {"totalCount": 1}}
