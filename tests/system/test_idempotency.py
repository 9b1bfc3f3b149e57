"""Writes sent with an idempotency key happen once, through both doors, on a real PostgreSQL.

Each test writes as users of its own, so that what it counts (tasks, events, stored keys, read
as the server's superuser, whom row-level security does not bind) is only its own doing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import asyncpg
import httpx
import pytest

from resolvers.retention import RetentionJanitor
from tests.support.app import app_client, make_settings, running_app
from tests.support.tokens import hs256_token

REPLAYED = "idempotent-replayed"


class Stored(NamedTuple):
    """What the database holds for one user."""

    tasks: list[tuple[int, str, bool, int]]
    events: int
    keys: list[str]


@dataclass(frozen=True)
class User:
    id: str

    @classmethod
    def fresh(cls) -> User:
        return cls(f"user-{uuid.uuid4().hex}")

    def headers(self, key: str | None = None, **extra: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {hs256_token(self.id)}", **extra}
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    @property
    def tasks(self) -> str:
        return f"/api/{self.id}/tasks"


def new_key() -> str:
    return f'"{uuid.uuid4()}"'


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(make_settings(database_url)) as http:
        yield http


@pytest.fixture
async def graphql_api(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app, for the GraphQL tests."""
    async with app_client(make_settings(database_url)) as http:
        yield http


async def stored(admin: asyncpg.Connection, user: User) -> Stored:
    tasks = await admin.fetch(
        "SELECT id, title, completed, version FROM tasks WHERE owner_id = $1 ORDER BY id", user.id
    )
    events = await admin.fetchval("SELECT count(*) FROM task_events WHERE owner_id = $1", user.id)
    keys = await admin.fetch(
        "SELECT key FROM idempotency_keys WHERE owner_id = $1 ORDER BY key", user.id
    )
    return Stored([tuple(row) for row in tasks], events, [row["key"] for row in keys])


async def create(http: httpx.AsyncClient, user: User, title: str = "a task") -> int:
    """A task of the user's, made without a key."""
    response = await http.post(user.tasks, json={"title": title}, headers=user.headers())
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


# ---------------------------------------------------------------------------------------------
# REST


class Write(NamedTuple):
    method: str
    path: str  # with {tasks} and {task}
    body: dict[str, Any] | None
    status: int


REST_WRITES = {
    "create": Write("POST", "{tasks}", {"title": "once", "description": "exactly"}, 201),
    "update": Write("PUT", "{tasks}/{task}", {"title": "renamed"}, 200),
    "toggle": Write("PATCH", "{tasks}/{task}/complete", None, 200),
    "delete": Write("DELETE", "{tasks}/{task}", None, 204),
}


async def send(
    http: httpx.AsyncClient,
    user: User,
    write: Write,
    task_id: int,
    key: str | None,
    **headers: str,
) -> httpx.Response:
    path = write.path.format(tasks=user.tasks, task=task_id)
    return await http.request(
        write.method, path, json=write.body, headers=user.headers(key, **headers)
    )


@pytest.mark.parametrize("kind", REST_WRITES)
async def test_a_rest_write_with_a_key_happens_once_and_a_retry_gets_its_response_again(
    api: httpx.AsyncClient, admin: asyncpg.Connection, kind: str
) -> None:
    user, write, key = User.fresh(), REST_WRITES[kind], new_key()
    task_id = await create(api, user)
    before = await stored(admin, user)

    first = await send(api, user, write, task_id, key)
    assert first.status_code == write.status, first.text
    assert REPLAYED not in first.headers
    written = await stored(admin, user)
    # The write ran: one more event, and the key kept with it.
    assert written.events == before.events + 1
    assert written.keys == [key.strip('"')]
    assert written.tasks != before.tasks

    for _ in range(3):
        retry = await send(api, user, write, task_id, key)
        assert retry.headers[REPLAYED] == "true"
        assert retry.status_code == first.status_code
        assert retry.content == first.content
        for header in ("etag", "location", "content-type"):
            assert retry.headers.get(header) == first.headers.get(header), header
    # ... and did not run again: no task, change or event more.
    assert await stored(admin, user) == written


async def test_the_replay_of_a_create_is_its_response_even_after_the_task_changed(
    api: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    user, key = User.fresh(), new_key()
    first = await api.post(user.tasks, json={"title": "v1"}, headers=user.headers(key))
    task_id = first.json()["id"]
    changed = await api.put(f"{user.tasks}/{task_id}", json={"title": "v2"}, headers=user.headers())
    assert changed.status_code == 200
    retry = await api.post(user.tasks, json={"title": "v1"}, headers=user.headers(key))
    assert (retry.status_code, retry.content, retry.headers["etag"]) == (
        201,
        first.content,
        '"1"',
    )
    assert len((await stored(admin, user)).tasks) == 1


Refuse = Callable[[], Awaitable[httpx.Response]]


async def _reused_by_method(http: httpx.AsyncClient, user: User, key: str) -> Refuse:
    task_id = await create(http, user)
    first = await http.post(user.tasks, json={"title": "a"}, headers=user.headers(key))
    assert first.status_code == 201
    path = f"{user.tasks}/{task_id}"
    return lambda: http.put(path, json={"title": "a"}, headers=user.headers(key))


async def _reused_by_path(http: httpx.AsyncClient, user: User, key: str) -> Refuse:
    one, other = await create(http, user), await create(http, user)
    first = await http.patch(f"{user.tasks}/{one}/complete", headers=user.headers(key))
    assert first.status_code == 200
    return lambda: http.patch(f"{user.tasks}/{other}/complete", headers=user.headers(key))


async def _reused_by_body(http: httpx.AsyncClient, user: User, key: str) -> Refuse:
    first = await http.post(user.tasks, json={"title": "a"}, headers=user.headers(key))
    assert first.status_code == 201
    return lambda: http.post(user.tasks, json={"title": "b"}, headers=user.headers(key))


async def _reused_by_if_match(http: httpx.AsyncClient, user: User, key: str) -> Refuse:
    task_id = await create(http, user)
    path = f"{user.tasks}/{task_id}/complete"
    first = await http.patch(path, headers=user.headers(key, **{"If-Match": '"1"'}))
    assert first.status_code == 200
    # The task is at version 2 now, so this one would succeed without the key.
    return lambda: http.patch(path, headers=user.headers(key, **{"If-Match": '"2"'}))


@pytest.mark.parametrize(
    "reuse", [_reused_by_method, _reused_by_path, _reused_by_body, _reused_by_if_match]
)
async def test_a_key_reused_for_another_request_is_422_and_writes_nothing(
    api: httpx.AsyncClient,
    admin: asyncpg.Connection,
    reuse: Callable[[httpx.AsyncClient, User, str], Awaitable[Refuse]],
) -> None:
    user, key = User.fresh(), new_key()
    refuse = await reuse(api, user, key)
    before = await stored(admin, user)
    refused = await refuse()
    assert refused.status_code == 422
    assert refused.json() == {
        "detail": [
            {
                "loc": ["header", "Idempotency-Key"],
                "msg": "This Idempotency-Key was already used for a different request; "
                "use a new key for a new request",
                "type": "idempotency_key_reused",
            }
        ]
    }
    assert await stored(admin, user) == before


async def test_the_same_body_spelled_differently_is_the_same_request(
    api: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    user, key = User.fresh(), new_key()
    headers = user.headers(key, **{"Content-Type": "application/json"})
    first = await api.post(user.tasks, content=b'{"title":"a","completed":true}', headers=headers)
    retry = await api.post(
        user.tasks, content=b'{ "completed": true,\n  "title": "\\u0061" }', headers=headers
    )
    assert first.status_code == 201
    assert (retry.status_code, retry.headers[REPLAYED], retry.content) == (
        201,
        "true",
        first.content,
    )
    assert len((await stored(admin, user)).tasks) == 1


@pytest.mark.parametrize(
    "header",
    [
        '""',
        '"unterminated',
        '"key";with=parameter',
        '"' + "k" * 256 + '"',
        "two words",
        '"one", "two"',
        '"caf\xc3\xa9"',
    ],
)
async def test_a_malformed_key_is_400_and_writes_nothing(
    api: httpx.AsyncClient, admin: asyncpg.Connection, header: str
) -> None:
    user = User.fresh()
    response = await api.post(
        user.tasks,
        json={"title": "never"},
        headers={**user.headers(), "Idempotency-Key": header.encode("latin-1")},
    )
    assert response.status_code == 400, response.text
    assert response.json() == {
        "detail": "Idempotency-Key must be a quoted string of 1 to 255 printable ASCII "
        'characters, such as "8e03978e-40d5-43e8-bc93-6894a57f9324"'
    }
    assert await stored(admin, user) == Stored([], 0, [])


async def test_two_key_headers_are_400_and_write_nothing(
    api: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    user = User.fresh()
    headers = [*user.headers().items(), ("Idempotency-Key", '"a"'), ("Idempotency-Key", '"b"')]
    response = await api.post(user.tasks, json={"title": "never"}, headers=headers)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Send one Idempotency-Key header")
    assert await stored(admin, user) == Stored([], 0, [])


async def test_a_key_is_not_read_before_the_token_nor_on_reads(api: httpx.AsyncClient) -> None:
    user = User.fresh()
    anonymous = await api.post(
        user.tasks, json={"title": "x"}, headers={"Idempotency-Key": "not a key"}
    )
    assert anonymous.status_code == 401
    for path in (user.tasks, f"{user.tasks}/1"):
        read = await api.get(path, headers=user.headers("not a key"))
        assert read.status_code in (200, 404), read.text
        assert REPLAYED not in read.headers


async def test_a_bare_key_is_the_same_key_as_its_quoted_form(
    api: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    user, bare = User.fresh(), str(uuid.uuid4())
    first = await api.post(user.tasks, json={"title": "a"}, headers=user.headers(bare))
    retry = await api.post(user.tasks, json={"title": "a"}, headers=user.headers(f'"{bare}"'))
    assert (first.status_code, REPLAYED in first.headers) == (201, False)
    assert (retry.status_code, retry.headers[REPLAYED]) == (201, "true")
    assert (await stored(admin, user)).keys == [bare]


async def test_two_users_with_the_same_key_never_meet(
    api: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    alice, bob, key = User.fresh(), User.fresh(), new_key()
    for user in (alice, bob):
        response = await api.post(user.tasks, json={"title": "mine"}, headers=user.headers(key))
        assert response.status_code == 201
        assert REPLAYED not in response.headers
    # Another body under the same key is bob's own request, not a reuse of alice's.
    other = await api.post(bob.tasks, json={"title": "other"}, headers=bob.headers(key))
    assert other.status_code == 422
    for user in (alice, bob):
        assert len((await stored(admin, user)).tasks) == 1


async def test_without_a_key_every_write_runs_as_before(
    api: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    user = User.fresh()
    responses = [
        await api.post(user.tasks, json={"title": "same"}, headers=user.headers()) for _ in range(2)
    ]
    assert [r.status_code for r in responses] == [201, 201]
    assert not any(REPLAYED in r.headers for r in responses)
    task_id = responses[0].json()["id"]
    toggles = [
        await api.patch(f"{user.tasks}/{task_id}/complete", headers=user.headers())
        for _ in range(2)
    ]
    assert [t.json()["completed"] for t in toggles] == [True, False]
    after = await stored(admin, user)
    assert (len(after.tasks), after.events, after.keys) == (2, 4, [])


async def _missing(http: httpx.AsyncClient, user: User, key: str) -> httpx.Response:
    return await http.patch(f"{user.tasks}/{2**40}/complete", headers=user.headers(key))


async def _stale(http: httpx.AsyncClient, user: User, key: str) -> httpx.Response:
    task_id = await create(http, user)
    return await http.patch(
        f"{user.tasks}/{task_id}/complete", headers=user.headers(key, **{"If-Match": '"7"'})
    )


async def _invalid(http: httpx.AsyncClient, user: User, key: str) -> httpx.Response:
    return await http.post(user.tasks, json={"title": "   "}, headers=user.headers(key))


@pytest.mark.parametrize(("fail", "status"), [(_missing, 404), (_stale, 412), (_invalid, 422)])
async def test_a_failed_write_keeps_no_key(
    api: httpx.AsyncClient,
    admin: asyncpg.Connection,
    fail: Callable[[httpx.AsyncClient, User, str], Awaitable[httpx.Response]],
    status: int,
) -> None:
    user, key = User.fresh(), new_key()
    before = await stored(admin, user)
    failed = await fail(api, user, key)
    assert failed.status_code == status, failed.text
    assert (await stored(admin, user)).keys == []
    # The key is free for a request of another kind, which a kept key would refuse.
    assert before.keys == []
    later = await api.post(user.tasks, json={"title": "later"}, headers=user.headers(key))
    assert (later.status_code, REPLAYED in later.headers) == (201, False)


# ---------------------------------------------------------------------------------------------
# Racing retries, restarts, expiry


@asynccontextmanager
async def stream_held(database_url: str, user: User) -> AsyncIterator[None]:
    """The user's event stream locked by another transaction (as a write of theirs holds it
    until commit): a write of theirs claims its key, writes the task, then waits here to
    record the event, until the block ends."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("SELECT taskql_lock_stream($1)", user.id)
            yield
    finally:
        await conn.close()


async def waiting_on_locks(admin: asyncpg.Connection, count: int) -> None:
    """Return once `count` statements in this database wait on a lock."""
    for _ in range(400):
        waiting = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting >= count:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"{count} statements never waited on a lock")


def graphql_create(user: User, key: str, title: str = "raced") -> Callable[..., Any]:
    query = (
        "mutation($key: String, $title: String) { createTask(input: {title: $title}, "
        "idempotencyKey: $key) { task { id title } replayed userErrors { code } } }"
    )

    async def post(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post(
            "/graphql",
            json={"query": query, "variables": {"key": key, "title": title}},
            headers=user.headers(),
        )

    return post


def rest_create(user: User, key: str) -> Callable[..., Any]:
    async def post(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post(user.tasks, json={"title": "raced"}, headers=user.headers(key))

    return post


def outcome(door: str, response: httpx.Response) -> tuple[Any, bool]:
    """(what the write answered, whether it was a replay), from either door."""
    if door == "rest":
        assert response.status_code == 201, response.text
        return response.json(), response.headers.get(REPLAYED) == "true"
    payload = response.json()["data"]["createTask"]
    assert payload["userErrors"] == []
    return payload["task"], payload["replayed"]


DOORS = {"rest": rest_create, "graphql": graphql_create}


@pytest.mark.parametrize("door", DOORS)
async def test_a_retry_sent_while_the_first_runs_waits_for_it_then_replays_it(
    api: httpx.AsyncClient, admin: asyncpg.Connection, database_url: str, door: str
) -> None:
    user, key = User.fresh(), str(uuid.uuid4())
    await create(api, user, "an earlier task")
    send_once = DOORS[door](user, key)
    async with stream_held(database_url, user):
        first = asyncio.create_task(send_once(api))
        await waiting_on_locks(admin, 1)
        # The first is mid-write, holding its key: the retry waits on that key, not a 409.
        retry = asyncio.create_task(send_once(api))
        await waiting_on_locks(admin, 2)
        assert not first.done()
        assert not retry.done()
    first_body, first_replayed = outcome(door, await first)
    retry_body, retry_replayed = outcome(door, await retry)
    assert (first_replayed, retry_replayed) == (False, True)
    assert retry_body == first_body
    assert len((await stored(admin, user)).tasks) == 2


@pytest.mark.parametrize("door", DOORS)
async def test_many_requests_racing_with_one_key_write_once(
    database_url: str, admin: asyncpg.Connection, door: str
) -> None:
    user, key = User.fresh(), str(uuid.uuid4())
    send_once = DOORS[door](user, key)
    # Four connections (the test server's are shared): four race in PostgreSQL at a time.
    async with app_client(make_settings(database_url, DB_POOL_SIZE="4")) as api:
        responses = await asyncio.gather(*(send_once(api) for _ in range(16)))
    outcomes = [outcome(door, response) for response in responses]
    assert sorted(replayed for _, replayed in outcomes) == [False] + [True] * 15
    assert len({str(body) for body, _ in outcomes}) == 1
    after = await stored(admin, user)
    assert (len(after.tasks), after.events, after.keys) == (1, 1, [key])


async def test_a_retry_after_the_server_restarted_is_replayed(
    database_url: str, admin: asyncpg.Connection
) -> None:
    user, key = User.fresh(), new_key()
    settings = make_settings(database_url)
    async with app_client(settings) as before_restart:
        first = await before_restart.post(
            user.tasks, json={"title": "t"}, headers=user.headers(key)
        )
    async with app_client(settings) as after_restart:
        retry = await after_restart.post(user.tasks, json={"title": "t"}, headers=user.headers(key))
    assert first.status_code == 201
    assert (retry.status_code, retry.headers[REPLAYED], retry.content) == (
        201,
        "true",
        first.content,
    )
    assert retry.headers["location"] == first.headers["location"]
    assert len((await stored(admin, user)).tasks) == 1


@pytest.mark.slow
async def test_past_its_window_the_janitor_removes_a_key_which_then_writes_afresh(
    database_url: str, admin: asyncpg.Connection
) -> None:
    user, key = User.fresh(), new_key()
    settings = make_settings(database_url, IDEMPOTENCY_KEY_SECONDS="1")
    async with running_app(settings) as (http, state):
        janitor: RetentionJanitor = state["janitor"]
        first = await http.post(user.tasks, json={"title": "t"}, headers=user.headers(key))
        assert first.status_code == 201
        # Within its window the key stays (the purge may remove other tests' older keys).
        await purge(janitor)
        assert (await stored(admin, user)).keys == [key.strip('"')]
        await asyncio.sleep(1.2)
        assert await purge(janitor) >= 1
        assert (await stored(admin, user)).keys == []
        again = await http.post(user.tasks, json={"title": "t"}, headers=user.headers(key))
    assert (again.status_code, REPLAYED in again.headers) == (201, False)
    assert again.json()["id"] != first.json()["id"]
    assert len((await stored(admin, user)).tasks) == 2


async def purge(janitor: RetentionJanitor) -> int:
    """One purge by this janitor, waiting out one another process may be running."""
    for _ in range(100):
        removed = await janitor.purge_once()
        if removed is not None:
            return removed
        await asyncio.sleep(0.05)
    raise AssertionError("the purge lock was never free")


# ---------------------------------------------------------------------------------------------
# GraphQL

TASK_FIELDS = "task { id title completed version } replayed userErrors { field code message }"
MUTATIONS = {
    "create": (
        "createTask",
        'mutation($key: String) { createTask(input: {title: "once"}, idempotencyKey: $key) '
        f"{{ {TASK_FIELDS} }} }}",
    ),
    "update": (
        "updateTask",
        'mutation($id: ID!, $key: String) { updateTask(id: $id, input: {title: "renamed"}, '
        f"idempotencyKey: $key) {{ {TASK_FIELDS} }} }}",
    ),
    "toggle": (
        "toggleTaskCompletion",
        "mutation($id: ID!, $key: String) { toggleTaskCompletion(id: $id, idempotencyKey: $key) "
        f"{{ {TASK_FIELDS} }} }}",
    ),
    "delete": (
        "deleteTask",
        "mutation($id: ID!, $key: String) { deleteTask(id: $id, idempotencyKey: $key) "
        "{ deletedTaskId replayed userErrors { field code message } } }",
    ),
}


async def graphql(
    http: httpx.AsyncClient,
    user: User,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    header_key: str | None = None,
) -> httpx.Response:
    return await http.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers=user.headers(header_key),
    )


async def mutate(
    http: httpx.AsyncClient, user: User, kind: str, task_id: int, key: str | None
) -> dict[str, Any]:
    field, query = MUTATIONS[kind]
    variables: dict[str, Any] = {"key": key}
    if kind != "create":
        variables["id"] = str(task_id)
    response = await graphql(http, user, query, variables)
    assert response.status_code == 200, response.text
    payload: dict[str, Any] = response.json()["data"][field]
    return payload


@pytest.mark.parametrize("kind", MUTATIONS)
async def test_a_mutation_with_a_key_happens_once_and_a_retry_gets_its_payload_again(
    graphql_api: httpx.AsyncClient, admin: asyncpg.Connection, kind: str
) -> None:
    user, key = User.fresh(), str(uuid.uuid4())
    task_id = await create(graphql_api, user)
    first = await mutate(graphql_api, user, kind, task_id, key)
    assert first["userErrors"] == []
    assert first["replayed"] is False
    written = await stored(admin, user)
    assert written.keys == [key]
    for _ in range(2):
        retry = await mutate(graphql_api, user, kind, task_id, key)
        assert retry == {**first, "replayed": True}
    assert await stored(admin, user) == written


async def test_a_key_argument_reused_with_other_arguments_is_a_user_error(
    graphql_api: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    user, key = User.fresh(), str(uuid.uuid4())
    first = await graphql_create(user, key, "first")(graphql_api)
    assert outcome("graphql", first)[1] is False
    refused = (await graphql_create(user, key, "second")(graphql_api)).json()["data"]
    assert refused == {
        "createTask": {
            "task": None,
            "replayed": False,
            "userErrors": [{"code": "IDEMPOTENCY_KEY_REUSED"}],
        }
    }
    assert [title for _, title, _, _ in (await stored(admin, user)).tasks] == ["first"]


@pytest.mark.parametrize("key", ["", "k" * 256, "café"])
async def test_a_malformed_key_argument_is_a_user_error_and_writes_nothing(
    graphql_api: httpx.AsyncClient, admin: asyncpg.Connection, key: str
) -> None:
    user = User.fresh()
    payload = await mutate(graphql_api, user, "create", 0, key)
    assert payload["task"] is None
    [error] = payload["userErrors"]
    assert (error["field"], error["code"]) == (["idempotencyKey"], "IDEMPOTENCY_KEY_INVALID")
    assert error["message"].startswith("idempotencyKey must be a quoted string")
    assert await stored(admin, user) == Stored([], 0, [])


ONE_CREATE = 'mutation { createTask(input: {title: "by header"}) { ' + TASK_FIELDS + " } }"


async def test_the_header_covers_a_request_of_one_mutation_field(
    graphql_api: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    user, key = User.fresh(), new_key()
    first = await graphql(graphql_api, user, ONE_CREATE, header_key=key)
    retry = await graphql(graphql_api, user, ONE_CREATE, header_key=key)
    first_payload = first.json()["data"]["createTask"]
    assert first_payload["replayed"] is False
    assert retry.json()["data"]["createTask"] == {**first_payload, "replayed": True}
    assert len((await stored(admin, user)).tasks) == 1
    # The same key and mutation sent as the argument are the same request: a replay too.
    same = await graphql_create(user, key.strip('"'), "by header")(graphql_api)
    assert outcome("graphql", same) == (
        {"id": first_payload["task"]["id"], "title": "by header"},
        True,
    )
    other = await graphql_create(user, key.strip('"'), "another")(graphql_api)
    assert other.json()["data"]["createTask"]["userErrors"] == [{"code": "IDEMPOTENCY_KEY_REUSED"}]


@pytest.mark.parametrize(
    "query",
    [
        # Two mutation fields: a header names one request, not two writes.
        'mutation { a: createTask(input: {title: "a"}) { ' + TASK_FIELDS + " } "
        'b: createTask(input: {title: "b"}) { ' + TASK_FIELDS + " } }",
        # One field, but through a fragment: only a field written out counts as one.
        "mutation { ...Make } fragment Make on Mutation { "
        'createTask(input: {title: "a"}) { ' + TASK_FIELDS + " } }",
    ],
)
async def test_the_header_on_other_mutations_is_refused_and_writes_nothing(
    graphql_api: httpx.AsyncClient, admin: asyncpg.Connection, query: str
) -> None:
    user = User.fresh()
    response = await graphql(graphql_api, user, query, header_key=new_key())
    assert response.status_code == 200
    payloads = response.json()["data"].values()
    for payload in payloads:
        [error] = payload["userErrors"]
        assert (error["field"], error["code"]) == (None, "IDEMPOTENCY_KEY_INVALID")
        assert "exactly one mutation field" in error["message"]
    assert await stored(admin, user) == Stored([], 0, [])


async def test_each_mutation_of_a_document_may_carry_its_own_key(
    graphql_api: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    user = User.fresh()
    query = (
        "mutation($a: String, $b: String) { "
        'a: createTask(input: {title: "a"}, idempotencyKey: $a) { ' + TASK_FIELDS + " } "
        'b: createTask(input: {title: "b"}, idempotencyKey: $b) { ' + TASK_FIELDS + " } }"
    )
    keys = {"a": str(uuid.uuid4()), "b": str(uuid.uuid4())}
    first = (await graphql(graphql_api, user, query, keys)).json()["data"]
    retry = (await graphql(graphql_api, user, query, keys)).json()["data"]
    assert [first[f]["replayed"] for f in "ab"] == [False, False]
    assert retry == {f: {**first[f], "replayed": True} for f in "ab"}
    assert sorted((await stored(admin, user)).keys) == sorted(keys.values())


async def test_a_header_and_an_argument_that_differ_are_refused(
    graphql_api: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    user = User.fresh()
    _, query = MUTATIONS["create"]
    response = await graphql(graphql_api, user, query, {"key": "one"}, header_key='"two"')
    [error] = response.json()["data"]["createTask"]["userErrors"]
    assert (error["field"], error["code"]) == (["idempotencyKey"], "IDEMPOTENCY_KEY_INVALID")
    assert "differ" in error["message"]
    agreeing = await graphql(graphql_api, user, query, {"key": "one"}, header_key='"one"')
    assert agreeing.json()["data"]["createTask"]["userErrors"] == []
    assert (await stored(admin, user)).keys == ["one"]


@pytest.mark.parametrize("accept", ["application/graphql-response+json", "application/json"])
async def test_a_malformed_header_is_a_400_before_anything_runs(
    graphql_api: httpx.AsyncClient, admin: asyncpg.Connection, accept: str
) -> None:
    user = User.fresh()
    response = await graphql_api.post(
        "/graphql",
        json={"query": ONE_CREATE},
        headers={**user.headers('"unterminated'), "Accept": accept},
    )
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "IDEMPOTENCY_KEY_INVALID"
    assert "data" not in response.json()
    assert await stored(admin, user) == Stored([], 0, [])


async def test_a_query_sent_with_the_header_is_answered_as_ever(
    graphql_api: httpx.AsyncClient,
) -> None:
    user = User.fresh()
    response = await graphql(
        graphql_api, user, "{ tasks(first: 1) { nodes { id } } }", header_key=new_key()
    )
    assert response.json() == {"data": {"tasks": {"nodes": []}}}


async def test_a_failed_mutation_keeps_no_key(
    graphql_api: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    user, key = User.fresh(), str(uuid.uuid4())
    missing = await mutate(graphql_api, user, "toggle", 2**40, key)
    assert [e["code"] for e in missing["userErrors"]] == ["NOT_FOUND"]
    assert (await stored(admin, user)).keys == []
    created = await mutate(graphql_api, user, "create", 0, key)
    assert (created["userErrors"], created["replayed"]) == ([], False)


async def test_a_key_names_one_request_whichever_door_it_came_through(
    api: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    user, key = User.fresh(), str(uuid.uuid4())
    rest = await api.post(user.tasks, json={"title": "once"}, headers=user.headers(f'"{key}"'))
    assert rest.status_code == 201
    payload = await mutate(api, user, "create", 0, key)
    assert [e["code"] for e in payload["userErrors"]] == ["IDEMPOTENCY_KEY_REUSED"]
    assert len((await stored(admin, user)).tasks) == 1


# ---------------------------------------------------------------------------------------------
# Browsers


async def test_browsers_may_send_a_key_and_read_the_replay_mark(database_url: str) -> None:
    settings = make_settings(database_url, CORS_ORIGINS="https://app.example")
    user, key = User.fresh(), new_key()
    origin = {"Origin": "https://app.example"}
    async with app_client(settings) as http:
        preflight = await http.options(
            user.tasks,
            headers={
                **origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
            },
        )
        assert preflight.status_code == 200
        assert "idempotency-key" in preflight.headers["access-control-allow-headers"].lower()
        for _ in range(2):
            response = await http.post(
                user.tasks, json={"title": "t"}, headers={**user.headers(key), **origin}
            )
    assert response.headers[REPLAYED] == "true"
    assert "Idempotent-Replayed" in response.headers["access-control-expose-headers"]
