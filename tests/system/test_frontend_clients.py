"""What frontends run, against a real uvicorn: Apollo Client's persisted queries link (under
node, in both modes), and a page in headless Chromium on another origin that sends tracing,
Sentry and Apollo client-awareness headers and reads X-Request-ID; another origin is blocked."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import main
from tests.support.app import make_settings
from tests.support.chromium import CHROMEDRIVER, CHROMIUM, MISSING, NPM, headless_chromium
from tests.support.cli import PROJECT_DIR, cli_environment, run_cli
from tests.support.databases import create_migrated_database, drop_database
from tests.support.live import live_server
from tests.support.static import static_server
from tests.support.tokens import JWT_SECRET, hs256_token

NODE = shutil.which("node")
CLIENTS = Path(__file__).resolve().parent / "clients"
# Installed once into a folder the repository ignores, and reused by later runs.
NPM_CACHE = PROJECT_DIR / ".data" / "npm-clients"
APOLLO_PACKAGES = {"@apollo/client": "4.3.8", "graphql": "16.15.0", "rxjs": "7.8.2"}

pytestmark = pytest.mark.slow


@pytest.fixture
async def own_database(admin_database_url: str) -> AsyncIterator[str]:
    """A migrated database of this test's own: persisted documents outlive a test's tasks."""
    name = f"taskql_clients_{uuid.uuid4().hex[:12]}"
    url = await create_migrated_database(admin_database_url, name)
    try:
        yield url
    finally:
        await drop_database(admin_database_url, name)


@pytest.fixture(scope="session")
def apollo() -> Path:
    """Apollo Client and its peers installed with npm, with the client script beside them."""
    if NODE is None or NPM is None:
        pytest.skip("the Apollo Client tests need node and npm (apt-get install nodejs npm)")
    NPM_CACHE.mkdir(parents=True, exist_ok=True)
    manifest = {"private": True, "type": "module", "dependencies": APOLLO_PACKAGES}
    package_json = NPM_CACHE / "package.json"
    if not package_json.exists() or json.loads(package_json.read_text()) != manifest:
        package_json.write_text(json.dumps(manifest))
        subprocess.run(
            [NPM, "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NPM_CACHE,
            check=True,
            capture_output=True,
            timeout=300,
        )
    script = NPM_CACHE / "apollo_persisted.mjs"
    shutil.copyfile(CLIENTS / "apollo_persisted.mjs", script)
    return script


def run_apollo(script: Path, command: str, url: str, user: str) -> Any:
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(script), command, f"{url}/graphql", hs256_token(user)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


HASH_BY_GET = {"method": "GET", "sentQuery": False, "sentHash": True, "status": 200}
QUERY_BY_POST = {"method": "POST", "sentQuery": True, "sentHash": True, "status": 200}
LISTED = {
    "tasks": {"__typename": "TaskConnection", "totalCount": 0, "nodes": []},
    "taskCounts": {"__typename": "TaskCounts", "all": 0, "active": 0},
}


def test_apollo_registers_documents_automatically(apollo: Path, own_database: str) -> None:
    with live_server(make_settings(own_database)) as url:
        seen = run_apollo(apollo, "run", url, "apollo-user")

    # The first time: the hash alone, PERSISTED_QUERY_NOT_FOUND, then hash and query.
    assert seen["first"]["requests"] == [HASH_BY_GET, QUERY_BY_POST]
    assert seen["first"]["data"] == LISTED
    # From then on the hash alone, by GET.
    assert seen["second"]["requests"] == [HASH_BY_GET]
    assert seen["second"]["data"] == LISTED
    assert seen["unknown"]["requests"] == [HASH_BY_GET, QUERY_BY_POST]
    assert seen["unknown"]["data"] == {"viewer": {"__typename": "Viewer", "id": "apollo-user"}}


async def test_apollo_with_registered_documents_only(
    apollo: Path, own_database: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "persisted-query-manifest.json"
    manifest.write_text(json.dumps(run_apollo(apollo, "manifest", "http://unused", "-")))
    env = cli_environment(DATABASE_URL=own_database, JWT_SECRET=JWT_SECRET)
    status, out, err = await run_cli("documents", "register", str(manifest), env=env)
    assert (status, err) == (0, ""), out
    settings = make_settings(own_database, GRAPHQL_PERSISTED_QUERIES="registered")

    with live_server(settings) as url:
        seen = run_apollo(apollo, "run", url, "apollo-user")

    # A registered document runs by its hash at once, every time.
    assert seen["first"]["requests"] == seen["second"]["requests"] == [HASH_BY_GET]
    assert seen["first"]["data"] == seen["second"]["data"] == LISTED
    # Another is refused: not found by hash, then refused in full; the app sees why.
    assert seen["unknown"]["requests"] == [HASH_BY_GET, {**QUERY_BY_POST, "status": 400}]
    assert seen["unknown"]["data"] is None
    assert seen["unknown"]["error"]["codes"] == ["PERSISTED_QUERY_NOT_REGISTERED"]
    conn = await asyncpg.connect(own_database)
    try:
        kinds = await conn.fetch("SELECT kind FROM persisted_documents")
    finally:
        await conn.close()
    assert [row["kind"] for row in kinds] == ["deployed"]


# The page a frontend on another origin would be: it sends what tracing (OpenTelemetry's fetch
# instrumentation, Sentry) and Apollo Client add to its requests, and shows what it can read.
PAGE = """<!doctype html>
<meta charset="utf-8">
<title>frontend</title>
<script>
const api = new URLSearchParams(location.search).get("api");
const token = new URLSearchParams(location.search).get("token");
const headers = {
  "Authorization": "Bearer " + token,
  "Content-Type": "application/json",
  "traceparent": "00-%(trace_id)s-00f067aa0ba902b7-01",
  "tracestate": "vendor=value",
  "sentry-trace": "%(trace_id)s-00f067aa0ba902b7-1",
  "baggage": "sentry-environment=test,sentry-release=1.0",
  "apollographql-client-name": "taskql-web",
  "apollographql-client-version": "1.2.3",
};
const mutation = 'mutation { createTask(input: {title: "from the page"}) { task { id } } }';
window.outcome = fetch(api + "/graphql", {
  method: "POST", headers, body: JSON.stringify({query: mutation}),
}).then(async (response) => ({
  status: response.status,
  requestId: response.headers.get("X-Request-ID"),
  body: await response.json(),
})).catch((error) => ({error: String(error)}));
</script>
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip(MISSING)
    with headless_chromium(tmp_path / "chromium") as driver:
        yield driver


def page_outcome(driver: Any, page_url: str, api: str, user: str) -> dict[str, Any]:
    driver.get(f"{page_url}/page.html?api={api}&token={hs256_token(user)}")
    outcome: dict[str, Any] = driver.execute_async_script(
        "const done = arguments[arguments.length - 1]; window.outcome.then(done);"
    )
    return outcome


async def test_a_page_on_an_allowed_origin_sends_tracing_headers_and_reads_the_request_id(
    browser: Any, clean_database: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskql.access")
    trace_id = uuid.uuid4().hex
    (tmp_path / "page.html").write_text(PAGE % {"trace_id": trace_id})
    with static_server(tmp_path) as page, static_server(tmp_path) as elsewhere:
        settings: main.Settings = make_settings(clean_database, CORS_ORIGINS=page)
        with live_server(settings) as api:
            allowed = page_outcome(browser, page, api, "page-user")
            blocked = page_outcome(browser, elsewhere, api, "other-page-user")

    assert allowed["status"] == 200, allowed
    assert allowed["body"]["data"]["createTask"]["task"]["id"]
    # The request id the page can put in a support report is the one in the logs, beside the
    # trace id its tracing sent: one user action, followed from the browser into the logs.
    lines = [
        record.fields  # type: ignore[attr-defined]
        for record in caplog.records
        if record.name == "taskql.access"
    ]
    [logged] = [line for line in lines if line["request_id"] == allowed["requestId"]]
    assert (logged["trace_id"], logged["route"], logged["status"]) == (trace_id, "/graphql", 200)
    # The other origin's page gets nothing, and its mutation never ran.
    assert "Failed to fetch" in blocked["error"]
    conn = await asyncpg.connect(clean_database)
    try:
        owners = await conn.fetch("SELECT owner_id FROM tasks")
    finally:
        await conn.close()
    assert [row["owner_id"] for row in owners] == ["page-user"]
