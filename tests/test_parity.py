"""The spec's acceptance scenarios through both doors (REST and GraphQL), then each door's rules.

Everything goes through the real ASGI app over HTTP with real tokens and a real PostgreSQL.
The app and its database are shared by the whole module; each test isolates itself by using
users of its own (fresh random ids), so no test can see another's tasks.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio

from tests.conftest import app_client, hs256_token, make_settings
from tests.support.databases import empty_database
from tests.support.jwks import JwksServer, SigningKey, ed25519_key, es256_key, rs256_key, sign

pytestmark = pytest.mark.asyncio(loop_scope="module")

GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """One app for the module: tests keep apart by using users of their own."""
    async with app_client(make_settings(database_url)) as client:
        yield client


# --- callers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """Who a request claims to be (the REST path's user) and the headers it sends."""

    user_id: str
    headers: Mapping[str, str]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_caller(prefix: str = "user") -> Caller:
    user_id = f"{prefix}-{uuid.uuid4().hex}"
    return Caller(user_id, bearer(hs256_token(user_id)))


@pytest.fixture
def alice() -> Caller:
    return new_caller("alice")


@pytest.fixture
def bob() -> Caller:
    return new_caller("bob")


# --- outcomes --------------------------------------------------------------------------------

Kind = Literal["ok", "not_found", "invalid", "conflict", "unauthenticated"]


@dataclass(frozen=True)
class TaskView:
    """A task as either door shows it, normalised so the two can be compared."""

    id: int
    title: str
    description: str
    completed: bool
    due_date: datetime | None
    created_at: datetime
    updated_at: datetime
    # REST carries the version only in the ETag of single-task responses, not in lists.
    version: int | None


@dataclass(frozen=True)
class Problem:
    field: str
    message: str


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    status: int
    tasks: tuple[TaskView, ...] = ()
    problems: tuple[Problem, ...] = ()
    current_version: int | None = None

    @property
    def task(self) -> TaskView:
        assert len(self.tasks) == 1, self
        return self.tasks[0]

    @property
    def fields(self) -> set[str]:
        return {problem.field for problem in self.problems}

    @property
    def messages(self) -> list[str]:
        return sorted(problem.message for problem in self.problems)


def _datetime(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0), f"not UTC: {value}"
    return parsed


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


class Door(Protocol):
    name: str

    async def create(self, caller: Caller, body: dict[str, Any]) -> Outcome: ...
    async def list(self, caller: Caller) -> Outcome: ...
    async def get(self, caller: Caller, task_id: int) -> Outcome: ...
    async def update(
        self, caller: Caller, task_id: int, body: dict[str, Any], version: int | None = None
    ) -> Outcome: ...
    async def toggle(self, caller: Caller, task_id: int, version: int | None = None) -> Outcome: ...
    async def delete(self, caller: Caller, task_id: int, version: int | None = None) -> Outcome: ...


REST_TASK_FIELDS = {
    "id",
    "title",
    "description",
    "due_date",
    "completed",
    "created_at",
    "updated_at",
}


def task_view(data: Mapping[str, Any], version: int | None) -> TaskView:
    """A task from its REST-shaped fields (exactly those), checking its date-times are UTC."""
    assert set(data) == REST_TASK_FIELDS, data
    created_at, updated_at = _datetime(data["created_at"]), _datetime(data["updated_at"])
    assert created_at is not None
    assert updated_at is not None
    return TaskView(
        id=data["id"],
        title=data["title"],
        description=data["description"],
        completed=data["completed"],
        due_date=_datetime(data["due_date"]),
        created_at=created_at,
        updated_at=updated_at,
        version=version,
    )


class RestDoor:
    """The legacy REST routes, /api/{user_id}/tasks..."""

    name = "rest"

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def create(self, caller: Caller, body: dict[str, Any]) -> Outcome:
        response = await self.http.post(
            f"/api/{caller.user_id}/tasks", json=body, headers=caller.headers
        )
        return self._outcome(response, 201)

    async def list(self, caller: Caller) -> Outcome:
        response = await self.http.get(f"/api/{caller.user_id}/tasks", headers=caller.headers)
        return self._outcome(response, 200)

    async def get(self, caller: Caller, task_id: int) -> Outcome:
        response = await self.http.get(
            f"/api/{caller.user_id}/tasks/{task_id}", headers=caller.headers
        )
        return self._outcome(response, 200)

    async def update(
        self, caller: Caller, task_id: int, body: dict[str, Any], version: int | None = None
    ) -> Outcome:
        response = await self.http.put(
            f"/api/{caller.user_id}/tasks/{task_id}",
            json=body,
            headers={**caller.headers, **self._if_match(version)},
        )
        return self._outcome(response, 200)

    async def toggle(self, caller: Caller, task_id: int, version: int | None = None) -> Outcome:
        response = await self.http.patch(
            f"/api/{caller.user_id}/tasks/{task_id}/complete",
            headers={**caller.headers, **self._if_match(version)},
        )
        return self._outcome(response, 200)

    async def delete(self, caller: Caller, task_id: int, version: int | None = None) -> Outcome:
        response = await self.http.delete(
            f"/api/{caller.user_id}/tasks/{task_id}",
            headers={**caller.headers, **self._if_match(version)},
        )
        return self._outcome(response, 204)

    @staticmethod
    def _if_match(version: int | None) -> dict[str, str]:
        return {} if version is None else {"If-Match": f'"{version}"'}

    def _outcome(self, response: httpx.Response, success: int) -> Outcome:
        status = response.status_code
        if status == success == 204:
            assert response.content == b""
            return Outcome("ok", status)
        body = response.json()
        assert response.headers["content-type"] == "application/json"
        if status == success:
            if isinstance(body, list):
                return Outcome("ok", status, tuple(task_view(item, None) for item in body))
            return Outcome(
                "ok", status, (task_view(body, int(response.headers["etag"].strip('"'))),)
            )
        if status == 404:
            assert isinstance(body["detail"], str)
            return Outcome("not_found", status)
        if status == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert isinstance(body["detail"], str)
            return Outcome("unauthenticated", status)
        if status == 412:
            assert response.headers["etag"] == f'"{body["current_version"]}"'
            return Outcome("conflict", status, current_version=body["current_version"])
        if status == 422:
            problems = []
            for item in body["detail"]:
                assert set(item) == {"loc", "msg", "type"}, item
                loc = item["loc"]
                problems.append(Problem(loc[-1] if len(loc) > 1 else loc[0], item["msg"]))
            return Outcome("invalid", status, problems=tuple(problems))
        raise AssertionError(f"unexpected REST response {status}: {response.text}")


TASK_FIELDS = "id title description completed dueDate createdAt updatedAt version"
PAYLOAD = f"task {{ {TASK_FIELDS} }} userErrors {{ field message code }}"
CREATE = f"""mutation Create($input: CreateTaskInput!) {{
  createTask(input: $input) {{ {PAYLOAD} }} }}"""
UPDATE = f"""mutation Update($id: ID!, $input: UpdateTaskInput!, $version: Int) {{
  updateTask(id: $id, input: $input, expectedVersion: $version) {{ {PAYLOAD} }} }}"""
TOGGLE = f"""mutation Toggle($id: ID!, $version: Int) {{
  toggleTaskCompletion(id: $id, expectedVersion: $version) {{ {PAYLOAD} }} }}"""
DELETE = f"""mutation Delete($id: ID!, $version: Int) {{
  deleteTask(id: $id, expectedVersion: $version) {{ deletedTaskId {PAYLOAD} }} }}"""
GET = f"query Get($id: ID!) {{ task(id: $id) {{ {TASK_FIELDS} }} }}"
LIST = f"query List {{ tasks(first: 100) {{ totalCount nodes {{ {TASK_FIELDS} }} }} }}"

_GRAPHQL_NAMES = {"due_date": "dueDate"}
_KINDS: dict[str, Kind] = {"NOT_FOUND": "not_found", "VERSION_CONFLICT": "conflict"}


class GraphQLDoor:
    """The frontend's door: POST /graphql, everything scoped to the token's user."""

    name = "graphql"

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def create(self, caller: Caller, body: dict[str, Any]) -> Outcome:
        return await self._mutation(caller, CREATE, "createTask", {"input": self._input(body)})

    async def list(self, caller: Caller) -> Outcome:
        status, data = await self._execute(caller, LIST, {})
        if data is None:
            return Outcome("unauthenticated", status)
        connection = data["tasks"]
        tasks = tuple(self._task(node) for node in connection["nodes"])
        assert connection["totalCount"] == len(tasks)
        return Outcome("ok", status, tasks)

    async def get(self, caller: Caller, task_id: int) -> Outcome:
        status, data = await self._execute(caller, GET, {"id": str(task_id)})
        if data is None:
            return Outcome("unauthenticated", status)
        if data["task"] is None:
            return Outcome("not_found", status)
        return Outcome("ok", status, (self._task(data["task"]),))

    async def update(
        self, caller: Caller, task_id: int, body: dict[str, Any], version: int | None = None
    ) -> Outcome:
        variables = {"id": str(task_id), "input": self._input(body), "version": version}
        return await self._mutation(caller, UPDATE, "updateTask", variables)

    async def toggle(self, caller: Caller, task_id: int, version: int | None = None) -> Outcome:
        variables = {"id": str(task_id), "version": version}
        return await self._mutation(caller, TOGGLE, "toggleTaskCompletion", variables)

    async def delete(self, caller: Caller, task_id: int, version: int | None = None) -> Outcome:
        variables = {"id": str(task_id), "version": version}
        return await self._mutation(caller, DELETE, "deleteTask", variables)

    @staticmethod
    def _input(body: dict[str, Any]) -> dict[str, Any]:
        return {_GRAPHQL_NAMES.get(name, name): value for name, value in body.items()}

    @staticmethod
    def _task(node: dict[str, Any]) -> TaskView:
        fields = {_snake(name): value for name, value in node.items() if name != "version"}
        return task_view({**fields, "id": int(node["id"])}, node["version"])

    async def _mutation(
        self, caller: Caller, query: str, field: str, variables: dict[str, Any]
    ) -> Outcome:
        status, data = await self._execute(caller, query, variables)
        if data is None:
            return Outcome("unauthenticated", status)
        if isinstance(data, Outcome):
            return data
        payload = data[field]
        user_errors = payload["userErrors"]
        task = payload.get("task")
        if not user_errors:
            if field == "deleteTask":
                assert payload["deletedTaskId"] == variables["id"]
                return Outcome("ok", status)
            return Outcome("ok", status, (self._task(task),))
        codes = {error["code"] for error in user_errors}
        kinds = {_KINDS.get(code, "invalid") for code in codes}
        assert len(kinds) == 1, user_errors
        kind = kinds.pop()
        if kind == "conflict":
            assert [error["field"] for error in user_errors] == [["expectedVersion"]]
            # The client gets the task as it is now, to merge or retry.
            return Outcome(kind, status, (self._task(task),), current_version=task["version"])
        assert task is None, payload
        assert payload.get("deletedTaskId") is None, payload
        if kind == "not_found":
            assert [error["field"] for error in user_errors] == [["id"]]
            return Outcome(kind, status)
        problems = []
        for error in user_errors:
            assert error["field"][:1] == ["input"], error
            assert len(error["field"]) == 2, error
            assert error["code"] == error["code"].upper()
            problems.append(Problem(_snake(error["field"][1]), error["message"]))
        return Outcome(kind, status, problems=tuple(problems))

    async def _execute(
        self, caller: Caller, query: str, variables: dict[str, Any]
    ) -> tuple[int, Any]:
        """(status, data); data is None for a 401, an Outcome for a rejected request."""
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables}, headers=caller.headers
        )
        assert response.headers["content-type"] == GRAPHQL_RESPONSE
        body = response.json()
        if response.status_code == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert [error["extensions"]["code"] for error in body["errors"]] == ["UNAUTHENTICATED"]
            assert "data" not in body
            return 401, None
        if response.status_code == 422:
            # Input the schema's types refuse (such as a malformed DateTime) is a request error.
            [error] = body["errors"]
            assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
            path = re.search(r"invalid value at \.(\w+)", error["message"])
            field = _snake(path.group(1)) if path else "?"
            return 422, Outcome("invalid", 422, problems=(Problem(field, error["message"]),))
        assert response.status_code == 200, response.text
        assert "errors" not in body, body
        return 200, body["data"]


@pytest.fixture(params=["rest", "graphql"])
def door(request: pytest.FixtureRequest, http: httpx.AsyncClient) -> Door:
    return RestDoor(http) if request.param == "rest" else GraphQLDoor(http)


async def create(door: Door, caller: Caller, **body: Any) -> TaskView:
    outcome = await door.create(caller, {"title": "A task", **body})
    assert outcome.kind == "ok", outcome
    return outcome.task


async def current(door: Door, caller: Caller, task_id: int) -> TaskView:
    outcome = await door.get(caller, task_id)
    assert outcome.kind == "ok", outcome
    return outcome.task


# --- acceptance scenarios, through both doors ------------------------------------------------


async def test_create_returns_the_new_task_with_a_unique_id(door: Door, alice: Caller) -> None:
    body = {"title": "Buy milk", "description": "2 litres", "due_date": "2026-12-01T17:00:00Z"}
    first = await door.create(alice, body)
    second = await door.create(alice, {"title": "Buy bread"})

    assert first.kind == second.kind == "ok"
    assert first.status == (201 if door.name == "rest" else 200)
    task = first.task
    assert task.id > 0
    assert second.task.id != task.id
    assert (task.title, task.description, task.completed) == ("Buy milk", "2 litres", False)
    assert task.due_date == datetime(2026, 12, 1, 17, tzinfo=UTC)
    assert task.version == 1
    assert task.created_at == task.updated_at
    assert abs(task.created_at - datetime.now(UTC)) < timedelta(minutes=5)
    assert second.task.description == ""
    assert second.task.due_date is None
    assert await current(door, alice, task.id) == task


async def test_create_trims_the_title_and_takes_every_field(door: Door, alice: Caller) -> None:
    task = await create(
        door, alice, title="  Buy milk \n", description=None, completed=True, due_date=None
    )

    assert (task.title, task.description, task.completed, task.due_date) == (
        "Buy milk",
        "",
        True,
        None,
    )


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2026-12-01T17:00:00Z", datetime(2026, 12, 1, 17, tzinfo=UTC)),
        ("2026-12-01T18:30:00+01:30", datetime(2026, 12, 1, 17, tzinfo=UTC)),
        ("2026-12-01T18:00:00+0100", datetime(2026, 12, 1, 17, tzinfo=UTC)),
        # Without an offset a date-time is read as UTC, and a date is its midnight.
        ("2026-12-01T17:00:00", datetime(2026, 12, 1, 17, tzinfo=UTC)),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
    ],
)
async def test_due_dates_are_stored_in_utc(
    door: Door, alice: Caller, sent: str, stored: datetime
) -> None:
    task = await create(door, alice, due_date=sent)

    assert task.due_date == stored
    assert (await current(door, alice, task.id)).due_date == stored


async def test_list_returns_only_the_callers_tasks_oldest_first(
    door: Door, alice: Caller, bob: Caller
) -> None:
    alices = [await create(door, alice, title=f"alice {n}") for n in range(3)]
    bobs = [await create(door, bob, title="bob 0")]

    alice_list = await door.list(alice)
    bob_list = await door.list(bob)
    nobody_list = await door.list(new_caller())

    assert alice_list.kind == bob_list.kind == nobody_list.kind == "ok"
    assert alice_list.status == 200
    assert [t.id for t in alice_list.tasks] == [t.id for t in alices]
    assert [t.title for t in alice_list.tasks] == ["alice 0", "alice 1", "alice 2"]
    assert [replace(t, version=None) for t in bob_list.tasks] == [
        replace(t, version=None) for t in bobs
    ]
    assert nobody_list.tasks == ()


async def test_get_returns_the_task(door: Door, alice: Caller) -> None:
    created = await create(door, alice, title="Read", description="a book")

    outcome = await door.get(alice, created.id)

    assert outcome.kind == "ok"
    assert outcome.status == 200
    assert outcome.task == created


async def test_update_sets_only_the_fields_sent(door: Door, alice: Caller) -> None:
    created = await create(
        door, alice, title="Old", description="keep me", due_date="2026-12-01T17:00:00Z"
    )

    renamed = await door.update(alice, created.id, {"title": "  New  "})
    assert renamed.kind == "ok"
    assert renamed.status == 200
    assert renamed.task == replace(
        created, title="New", version=2, updated_at=renamed.task.updated_at
    )
    assert renamed.task.updated_at > created.updated_at

    cleared = await door.update(alice, created.id, {"due_date": None})
    assert cleared.task.due_date is None
    assert (cleared.task.title, cleared.task.description) == ("New", "keep me")
    assert cleared.task.version == 3

    rest = await door.update(
        alice,
        created.id,
        {"description": None, "completed": True, "due_date": "2027-01-02T03:04:05Z"},
    )
    assert (rest.task.title, rest.task.description, rest.task.completed) == ("New", "", True)
    assert rest.task.due_date == datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert rest.task.created_at == created.created_at
    assert await current(door, alice, created.id) == rest.task


async def test_an_empty_update_changes_nothing(door: Door, alice: Caller) -> None:
    created = await create(door, alice, title="Stay")

    outcome = await door.update(alice, created.id, {})

    assert outcome.kind == "ok"
    assert outcome.task == created
    assert await current(door, alice, created.id) == created


async def test_toggle_twice_returns_to_the_original_state(door: Door, alice: Caller) -> None:
    created = await create(door, alice)

    once = await door.toggle(alice, created.id)
    twice = await door.toggle(alice, created.id)

    assert once.kind == twice.kind == "ok"
    assert once.status == 200
    assert (once.task.completed, once.task.version) == (True, 2)
    assert (twice.task.completed, twice.task.version) == (False, 3)
    assert twice.task == replace(created, version=3, updated_at=twice.task.updated_at)
    assert await current(door, alice, created.id) == twice.task


async def test_delete_removes_the_task(door: Door, alice: Caller) -> None:
    kept = await create(door, alice, title="kept")
    doomed = await create(door, alice, title="doomed")

    deleted = await door.delete(alice, doomed.id)

    assert deleted.kind == "ok"
    assert deleted.status == (204 if door.name == "rest" else 200)
    assert (await door.get(alice, doomed.id)).kind == "not_found"
    assert (await door.delete(alice, doomed.id)).kind == "not_found"
    assert (await door.toggle(alice, doomed.id)).kind == "not_found"
    assert (await door.update(alice, doomed.id, {"title": "back"})).kind == "not_found"
    assert [t.id for t in (await door.list(alice)).tasks] == [kept.id]


OPERATIONS = ["get", "update", "toggle", "delete"]


async def _operate(door: Door, caller: Caller, operation: str, task_id: int) -> Outcome:
    if operation == "get":
        return await door.get(caller, task_id)
    if operation == "update":
        return await door.update(caller, task_id, {"title": "mine now", "completed": True})
    if operation == "toggle":
        return await door.toggle(caller, task_id)
    return await door.delete(caller, task_id)


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_another_users_task_is_not_found(
    door: Door, alice: Caller, bob: Caller, operation: str
) -> None:
    task = await create(door, alice, title="private", description="secret")

    outcome = await _operate(door, bob, operation, task.id)

    assert outcome.kind == "not_found"
    assert outcome.status == (404 if door.name == "rest" else 200)
    # The owner sees the task exactly as it was.
    assert await current(door, alice, task.id) == task
    assert [t.id for t in (await door.list(alice)).tasks] == [task.id]


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("task_id", [0, 2**31, 2**63 - 1, 2**63, 10**20])
async def test_a_task_id_that_names_no_task_is_not_found(
    door: Door, alice: Caller, operation: str, task_id: int
) -> None:
    outcome = await _operate(door, alice, operation, task_id)

    assert outcome.kind == "not_found"


@pytest.mark.parametrize("operation", ["update", "toggle", "delete"])
async def test_a_stale_version_is_a_conflict_and_changes_nothing(
    door: Door, alice: Caller, operation: str
) -> None:
    task = await create(door, alice)
    moved = (await door.toggle(alice, task.id)).task

    if operation == "update":
        outcome = await door.update(alice, task.id, {"title": "lost update"}, version=1)
    elif operation == "toggle":
        outcome = await door.toggle(alice, task.id, version=1)
    else:
        outcome = await door.delete(alice, task.id, version=1)

    assert outcome.kind == "conflict"
    assert outcome.current_version == 2
    assert outcome.status == (412 if door.name == "rest" else 200)
    assert await current(door, alice, task.id) == moved


async def test_a_matching_version_is_applied(door: Door, alice: Caller) -> None:
    task = await create(door, alice)

    updated = await door.update(alice, task.id, {"title": "checked"}, version=1)
    toggled = await door.toggle(alice, task.id, version=2)
    deleted = await door.delete(alice, task.id, version=3)

    assert (updated.kind, toggled.kind, deleted.kind) == ("ok", "ok", "ok")
    assert (updated.task.version, toggled.task.version) == (2, 3)
    assert (await door.get(alice, task.id)).kind == "not_found"


async def test_concurrent_toggles_are_never_lost(door: Door, alice: Caller) -> None:
    task = await create(door, alice)

    outcomes = await asyncio.gather(*(door.toggle(alice, task.id) for _ in range(10)))

    assert {o.kind for o in outcomes} == {"ok"}
    assert sorted(o.task.version for o in outcomes) == list(range(2, 12))
    final = await current(door, alice, task.id)
    assert (final.version, final.completed) == (11, False)


async def test_concurrent_updates_of_one_version_let_exactly_one_win(
    door: Door, alice: Caller
) -> None:
    task = await create(door, alice)

    outcomes = await asyncio.gather(
        *(door.update(alice, task.id, {"title": f"writer {n}"}, version=1) for n in range(5))
    )

    winners = [o for o in outcomes if o.kind == "ok"]
    assert len(winners) == 1
    assert sorted(o.kind for o in outcomes) == ["conflict"] * 4 + ["ok"]
    assert await current(door, alice, task.id) == winners[0].task


# Each invalid input with the field it is reported on and the message; both doors give the
# same message, because both call the same validation.
INVALID_INPUTS = [
    pytest.param({"description": "no title"}, "title", "Title is required", id="missing-title"),
    pytest.param({"title": None}, "title", "Title must not be null", id="null-title"),
    pytest.param({"title": ""}, "title", "Title must not be blank", id="blank-title"),
    pytest.param(
        {"title": " \t\n\u2003 "}, "title", "Title must not be blank", id="whitespace-title"
    ),
    pytest.param(
        {"title": "t" * 256}, "title", "Title must be at most 255 characters", id="title-256"
    ),
    pytest.param(
        {"title": "x", "description": "d" * 10_001},
        "description",
        "Description must be at most 10000 characters",
        id="description-10001",
    ),
    pytest.param(
        {"title": "a\x00b"}, "title", "Title must not contain NUL characters", id="nul-title"
    ),
    pytest.param(
        {"title": "x", "description": "nul\x00"},
        "description",
        "Description must not contain NUL characters",
        id="nul-description",
    ),
    pytest.param(
        {"title": "x", "due_date": "0001-01-01T00:00:00+01:00"},
        "due_date",
        "Due date must fall within the years 0002 to 9998",
        id="due-date-out-of-range",
    ),
]


@pytest.mark.parametrize(("body", "field", "message"), INVALID_INPUTS)
async def test_invalid_input_is_refused_on_create(
    door: Door, alice: Caller, body: dict[str, Any], field: str, message: str
) -> None:
    outcome = await door.create(alice, body)

    assert outcome.kind == "invalid"
    assert outcome.status == (422 if door.name == "rest" else 200)
    assert outcome.problems == (Problem(field, message),)
    assert (await door.list(alice)).tasks == ()


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [p for p in INVALID_INPUTS if p.id != "missing-title"],
)
async def test_invalid_input_is_refused_on_update(
    door: Door, alice: Caller, body: dict[str, Any], field: str, message: str
) -> None:
    task = await create(door, alice, title="unchanged")

    outcome = await door.update(alice, task.id, body)

    assert outcome.kind == "invalid"
    assert outcome.problems == (Problem(field, message),)
    assert await current(door, alice, task.id) == task


async def test_every_invalid_field_is_reported_at_once(door: Door, alice: Caller) -> None:
    outcome = await door.create(
        alice, {"title": " ", "description": "d" * 10_001, "due_date": "9999-12-31T23:59:59-01:00"}
    )

    assert outcome.kind == "invalid"
    assert outcome.fields == {"title", "description", "due_date"}
    assert outcome.messages == [
        "Description must be at most 10000 characters",
        "Due date must fall within the years 0002 to 9998",
        "Title must not be blank",
    ]


async def test_a_malformed_due_date_is_refused(door: Door, alice: Caller) -> None:
    outcome = await door.create(alice, {"title": "x", "due_date": "next tuesday"})

    assert outcome.kind == "invalid"
    assert outcome.fields == {"due_date"}
    assert outcome.status == 422
    if door.name == "rest":
        assert outcome.messages == [
            "Due date must be a date such as 2026-12-31 or a date-time such as 2026-12-31T17:00:00Z"
        ]
    else:
        # GraphQL's DateTime scalar refuses it before any resolver runs: a request error.
        assert "DateTime" in outcome.messages[0]
    assert (await door.list(alice)).tasks == ()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"title": "t" * 255}, id="title-255"),
        pytest.param({"title": "é" * 255}, id="title-255-two-byte"),
        pytest.param({"title": "\U0001f600" * 255}, id="title-255-four-byte"),
        pytest.param({"title": "  " + "t" * 255 + "  "}, id="title-255-after-trimming"),
        pytest.param({"title": "x", "description": "d" * 10_000}, id="description-10000"),
        pytest.param({"title": "x", "description": "\U0001f600" * 10_000}, id="description-4b"),
    ],
)
async def test_input_at_the_limits_is_accepted(
    door: Door, alice: Caller, body: dict[str, Any]
) -> None:
    task = await create(door, alice, **body)

    assert task.title == body["title"].strip()
    assert task.description == body.get("description", "")
    assert await current(door, alice, task.id) == task


def _credentials(kind: str, user_id: str) -> dict[str, str]:
    now = int(time.time())
    if kind == "none":
        return {}
    if kind == "garbage":
        return bearer("garbage")
    if kind == "expired":
        return bearer(hs256_token(user_id, iat=now - 7200, exp=now - 3600))
    if kind == "other-secret":
        return bearer(hs256_token(user_id, secret="another-secret-that-is-long-enough-too"))
    if kind == "no-exp":
        return bearer(hs256_token(user_id, exp=None))
    return {"Authorization": f"Basic {user_id}"}


CREDENTIALS = ["none", "garbage", "expired", "other-secret", "no-exp", "basic-scheme"]


@pytest.mark.parametrize("credentials", CREDENTIALS)
@pytest.mark.parametrize("operation", ["create", "list", *OPERATIONS])
async def test_requests_without_a_valid_token_are_unauthenticated(
    door: Door, alice: Caller, credentials: str, operation: str
) -> None:
    task = await create(door, alice)
    intruder = Caller(alice.user_id, _credentials(credentials, alice.user_id))

    if operation == "create":
        outcome = await door.create(intruder, {"title": "planted"})
    elif operation == "list":
        outcome = await door.list(intruder)
    else:
        outcome = await _operate(door, intruder, operation, task.id)

    assert outcome.kind == "unauthenticated"
    assert outcome.status == 401
    assert [t.id for t in (await door.list(alice)).tasks] == [task.id]
    assert await current(door, alice, task.id) == task


async def test_a_task_is_the_same_through_both_doors(http: httpx.AsyncClient) -> None:
    alice = new_caller("alice")
    rest, graphql = RestDoor(http), GraphQLDoor(http)
    from_rest = await create(rest, alice, title="via REST", due_date="2026-12-01T17:00:00Z")
    from_graphql = await create(graphql, alice, title="via GraphQL", description="d")
    await rest.toggle(alice, from_graphql.id)
    await graphql.toggle(alice, from_rest.id)

    for task_id in (from_rest.id, from_graphql.id):
        assert await current(rest, alice, task_id) == await current(graphql, alice, task_id)
    rest_list = (await rest.list(alice)).tasks
    graphql_list = (await graphql.list(alice)).tasks
    assert rest_list == tuple(replace(t, version=None) for t in graphql_list)
    assert [t.id for t in rest_list] == [from_rest.id, from_graphql.id]


# --- REST only ---------------------------------------------------------------------------------


async def test_rest_create_answers_201_with_location_and_etag(
    http: httpx.AsyncClient, alice: Caller
) -> None:
    response = await http.post(
        f"/api/{alice.user_id}/tasks", json={"title": "Buy milk"}, headers=alice.headers
    )

    assert response.status_code == 201
    task = response.json()
    assert response.headers["location"] == f"/api/{alice.user_id}/tasks/{task['id']}"
    assert response.headers["etag"] == '"1"'
    follow = await http.get(response.headers["location"], headers=alice.headers)
    assert follow.status_code == 200
    assert follow.json() == task


async def test_rest_etag_follows_the_version(http: httpx.AsyncClient, alice: Caller) -> None:
    base = f"/api/{alice.user_id}/tasks"
    created = await http.post(base, json={"title": "t"}, headers=alice.headers)
    path = f"{base}/{created.json()['id']}"

    toggled = await http.patch(f"{path}/complete", headers=alice.headers)
    updated = await http.put(path, json={"title": "u"}, headers=alice.headers)
    fetched = await http.get(path, headers=alice.headers)

    assert [r.headers["etag"] for r in (created, toggled, updated, fetched)] == [
        '"1"',
        '"2"',
        '"3"',
        '"3"',
    ]


async def test_rest_if_match(http: httpx.AsyncClient, alice: Caller) -> None:
    base = f"/api/{alice.user_id}/tasks"
    task_id = (await http.post(base, json={"title": "t"}, headers=alice.headers)).json()["id"]
    path = f"{base}/{task_id}"
    await http.patch(f"{path}/complete", headers=alice.headers)

    stale = await http.put(path, json={"title": "x"}, headers={**alice.headers, "If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.json()["current_version"] == 2
    assert isinstance(stale.json()["detail"], str)
    assert stale.headers["etag"] == '"2"'

    matching = await http.put(
        path, json={"title": "x"}, headers={**alice.headers, "If-Match": '"2"'}
    )
    assert matching.status_code == 200
    assert matching.headers["etag"] == '"3"'

    weak = await http.patch(f"{path}/complete", headers={**alice.headers, "If-Match": 'W/"3"'})
    assert weak.status_code == 200
    anything = await http.patch(f"{path}/complete", headers={**alice.headers, "If-Match": "*"})
    assert anything.status_code == 200

    stale_delete = await http.delete(path, headers={**alice.headers, "If-Match": '"1"'})
    assert stale_delete.status_code == 412
    assert (await http.get(path, headers=alice.headers)).status_code == 200

    empty_update = await http.put(path, json={}, headers={**alice.headers, "If-Match": '"1"'})
    assert empty_update.status_code == 412
    assert empty_update.json()["current_version"] == 5

    # Well-formed tags that no version can have (the column is a 32-bit integer).
    for tag in ['"2147483648"', '"99999999999999999999"']:
        for method, target in [("PUT", path), ("PATCH", f"{path}/complete"), ("DELETE", path)]:
            body = {"json": {"title": "x"}} if method == "PUT" else {}
            answer = await http.request(
                method, target, headers={**alice.headers, "If-Match": tag}, **body
            )
            assert answer.status_code == 412, (tag, method, answer.text)
            assert answer.json()["current_version"] == 5
        missing = await http.delete(
            f"{base}/{task_id + 1000}", headers={**alice.headers, "If-Match": tag}
        )
        assert missing.status_code == 404

    bad = await http.delete(path, headers={**alice.headers, "If-Match": "yesterday"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["header", "If-Match"]
    # What the OpenAPI document allows: quoted, weak or (for legacy clients) bare versions.
    half_quoted = await http.delete(path, headers={**alice.headers, "If-Match": '"5'})
    assert half_quoted.status_code == 422
    bare = await http.patch(f"{path}/complete", headers={**alice.headers, "If-Match": "5"})
    assert bare.status_code == 200


def _every_route(owner: str, task_id: str) -> list[tuple[str, str]]:
    return [
        ("GET", f"/api/{owner}/tasks"),
        ("POST", f"/api/{owner}/tasks"),
        ("GET", f"/api/{owner}/tasks/{task_id}"),
        ("PUT", f"/api/{owner}/tasks/{task_id}"),
        ("PATCH", f"/api/{owner}/tasks/{task_id}/complete"),
        ("DELETE", f"/api/{owner}/tasks/{task_id}"),
    ]


BODIES = {
    "valid": {"json": {"title": "planted"}},
    "invalid": {"json": {"title": ""}},
    "malformed": {"content": b"{", "headers": {"Content-Type": "application/json"}},
    "wrong-type": {"content": b"title=x", "headers": {"Content-Type": "text/plain"}},
}


@pytest.mark.parametrize("body", list(BODIES))
@pytest.mark.parametrize("task_id", ["existing", "1000000000", "abc", "99999999999999999999"])
async def test_rest_another_users_path_is_forbidden_on_every_route(
    http: httpx.AsyncClient, alice: Caller, bob: Caller, task_id: str, body: str
) -> None:
    task = (
        await http.post(f"/api/{alice.user_id}/tasks", json={"title": "t"}, headers=alice.headers)
    ).json()
    if task_id == "existing":
        task_id = str(task["id"])

    for method, path in _every_route(alice.user_id, task_id):
        options = BODIES[body] if method in ("POST", "PUT") else {}
        request_headers = {**bob.headers, **options.get("headers", {})}
        response = await http.request(
            method,
            path,
            json=options.get("json"),
            content=options.get("content"),
            headers=request_headers,
        )
        assert response.status_code == 403, (method, path, response.text)
        assert response.json() == {"detail": "You can only access your own tasks"}

    owner_view = await http.get(f"/api/{alice.user_id}/tasks", headers=alice.headers)
    assert owner_view.json() == [task]


async def test_rest_forbidden_is_decided_before_any_query() -> None:
    # A database nobody listens on: any query would fail with 503, so a 403 proves none ran.
    unreachable = "postgresql://postgres@127.0.0.1:1/nowhere"
    alice, bob = new_caller("alice"), new_caller("bob")
    async with app_client(make_settings(unreachable, DB_CONNECT_TIMEOUT="2")) as client:
        for method, path in _every_route(alice.user_id, "1"):
            body = {"json": {"title": "x"}} if method in ("POST", "PUT") else {}
            forbidden = await client.request(method, path, headers=bob.headers, **body)
            assert forbidden.status_code == 403, (method, path, forbidden.text)
            own = await client.request(method, path, headers=alice.headers, **body)
            assert own.status_code == 503, (method, path, own.text)
            assert int(own.headers["retry-after"]) > 0
        graphql = await client.post(
            "/graphql", json={"query": "{ tasks { totalCount } }"}, headers=alice.headers
        )
        assert graphql.status_code == 503
        assert graphql.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"


def _assert_fastapi_422(response: httpx.Response, loc: list[str], kind: str) -> None:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    assert detail
    for item in detail:
        assert set(item) == {"loc", "msg", "type"}
        assert isinstance(item["msg"], str)
        assert item["msg"]
    assert [(item["loc"], item["type"]) for item in detail] == [(loc, kind)]


MALFORMED_BODIES = [
    pytest.param(b'{"title": ', ["body"], "json_invalid", id="truncated-json"),
    pytest.param(b"", ["body"], "json_invalid", id="empty-body"),
    pytest.param(b'{"title": "x",}', ["body"], "json_invalid", id="trailing-comma"),
    pytest.param(b'{"title":"\\ud800"}', ["body"], "json_invalid", id="lone-surrogate"),
    pytest.param(b'{"title": "\xff"}', ["body"], "json_invalid", id="invalid-utf8"),
    pytest.param(b'[{"title": "x"}]', ["body"], "dict_type", id="array"),
    pytest.param(b'"title"', ["body"], "dict_type", id="string"),
    pytest.param(b"null", ["body"], "dict_type", id="null"),
    pytest.param(b'{"title": 5}', ["body", "title"], "string_type", id="number-title"),
    pytest.param(b'{"title": ["x"]}', ["body", "title"], "string_type", id="array-title"),
    pytest.param(
        b'{"title": "x", "completed": "yes"}', ["body", "completed"], "bool_type", id="str-bool"
    ),
    pytest.param(
        b'{"title": "x", "completed": 1}', ["body", "completed"], "bool_type", id="int-bool"
    ),
    pytest.param(
        b'{"title": "x", "description": {"a": 1}}',
        ["body", "description"],
        "string_type",
        id="object-description",
    ),
    pytest.param(
        b'{"title": "x", "due_date": 1767225600}',
        ["body", "due_date"],
        "datetime_type",
        id="number-due-date",
    ),
    pytest.param(
        b'{"title": "x", "due_date": "2026-13-01"}',
        ["body", "due_date"],
        "datetime_parsing",
        id="bad-month",
    ),
]


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize(("raw", "loc", "kind"), MALFORMED_BODIES)
async def test_rest_malformed_bodies_are_422_in_fastapis_shape(
    http: httpx.AsyncClient,
    alice: Caller,
    method: str,
    raw: bytes,
    loc: list[str],
    kind: str,
) -> None:
    base = f"/api/{alice.user_id}/tasks"
    task = (await http.post(base, json={"title": "t"}, headers=alice.headers)).json()
    path = base if method == "POST" else f"{base}/{task['id']}"

    response = await http.request(
        method, path, content=raw, headers={**alice.headers, "Content-Type": "application/json"}
    )

    _assert_fastapi_422(response, loc, kind)
    assert (await http.get(base, headers=alice.headers)).json() == [task]


@pytest.mark.parametrize("task_id", ["abc", "1.5", "-1", "1e3", "%20", "\u0661"])
@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
async def test_rest_a_non_integer_task_id_is_422(
    http: httpx.AsyncClient, alice: Caller, method: str, task_id: str
) -> None:
    path = f"/api/{alice.user_id}/tasks/{task_id}" + ("/complete" if method == "PATCH" else "")
    body = {"json": {"title": "x"}} if method == "PUT" else {}

    response = await http.request(method, path, headers=alice.headers, **body)

    _assert_fastapi_422(response, ["path", "task_id"], "int_parsing")


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
async def test_rest_a_huge_task_id_is_404_not_500(
    http: httpx.AsyncClient, alice: Caller, method: str
) -> None:
    path = f"/api/{alice.user_id}/tasks/99999999999999999999"
    path += "/complete" if method == "PATCH" else ""
    body = {"json": {"title": "x"}} if method == "PUT" else {}

    response = await http.request(method, path, headers=alice.headers, **body)

    assert response.status_code == 404
    assert response.json() == {"detail": "Task 99999999999999999999 not found"}


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_rest_a_body_that_is_not_json_is_415(
    http: httpx.AsyncClient, alice: Caller, method: str, content_type: str
) -> None:
    base = f"/api/{alice.user_id}/tasks"
    task = (await http.post(base, json={"title": "t"}, headers=alice.headers)).json()
    path = base if method == "POST" else f"{base}/{task['id']}"

    response = await http.request(
        method,
        path,
        content=b'{"title": "x"}',
        headers={**alice.headers, "Content-Type": content_type},
    )

    assert response.status_code == 415
    assert isinstance(response.json()["detail"], str)
    assert (await http.get(base, headers=alice.headers)).json() == [task]


async def test_rest_json_bodies_are_accepted_without_a_content_type_or_with_a_charset(
    http: httpx.AsyncClient, alice: Caller
) -> None:
    base = f"/api/{alice.user_id}/tasks"

    bare = await http.post(base, content=b'{"title": "bare"}', headers=alice.headers)
    charset = await http.post(
        base,
        content='{"title": "caf\u00e9"}'.encode(),
        headers={**alice.headers, "Content-Type": "application/json; charset=utf-8"},
    )

    assert (bare.status_code, charset.status_code) == (201, 201)
    assert charset.json()["title"] == "caf\u00e9"


async def test_rest_fields_a_client_may_not_set_are_ignored(
    http: httpx.AsyncClient, alice: Caller, bob: Caller
) -> None:
    body = {"title": "x", "id": 424242, "owner_id": bob.user_id, "version": 99, "extra": 1}

    response = await http.post(f"/api/{alice.user_id}/tasks", json=body, headers=alice.headers)

    assert response.status_code == 201
    assert response.json()["id"] != 424242
    assert response.headers["etag"] == '"1"'
    assert (await http.get(f"/api/{bob.user_id}/tasks", headers=bob.headers)).json() == []


@pytest.mark.parametrize(
    "prefix", ["auth0|", "ada@example.com:", "Zo\u00eb \u03a9 \u674e ", "a?b#c", "50%", "a+b"]
)
async def test_rest_any_subject_can_use_its_own_path(http: httpx.AsyncClient, prefix: str) -> None:
    # Subjects are opaque strings: Auth0's carry "|", others e-mail addresses or any text.
    user_id = f"{prefix}{uuid.uuid4().hex}"
    headers = bearer(hs256_token(user_id))
    base = f"/api/{quote(user_id, safe='')}/tasks"

    created = await http.post(base, json={"title": "x"}, headers=headers)

    assert created.status_code == 201, created.text
    follow = await http.get(created.headers["location"], headers=headers)
    assert follow.status_code == 200
    assert follow.json() == created.json()
    assert (await http.get(base, headers=headers)).json() == [created.json()]
    viewer = await graphql(http, "{ viewer { id } }", headers=headers)
    assert viewer.json() == {"data": {"viewer": {"id": user_id}}}


async def test_rest_methods_and_unknown_routes(http: httpx.AsyncClient, alice: Caller) -> None:
    wrong_method = await http.post(f"/api/{alice.user_id}/tasks/1", headers=alice.headers)
    unknown = await http.get("/api/nothing-here", headers=alice.headers)
    head = await http.head(f"/api/{alice.user_id}/tasks", headers=alice.headers)
    other_head = await http.head(f"/api/{alice.user_id}x/tasks", headers=alice.headers)

    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-type"] == "application/json"
    assert other_head.status_code == 403

    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"detail": "Method Not Allowed"}
    assert set(wrong_method.headers["allow"].replace(" ", "").split(",")) == {
        "GET",
        "HEAD",
        "PUT",
        "DELETE",
    }
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "Not Found"}


async def test_rest_openapi_document_describes_the_routes(
    http: httpx.AsyncClient, alice: Caller
) -> None:
    response = await http.get("/api/openapi.json")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["openapi"].startswith("3.1.")
    assert document["info"]["title"]
    assert document["info"]["version"]
    operations = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert operations == {
        ("GET", "/api/{user_id}/tasks"),
        ("POST", "/api/{user_id}/tasks"),
        ("GET", "/api/{user_id}/tasks/{task_id}"),
        ("PUT", "/api/{user_id}/tasks/{task_id}"),
        ("DELETE", "/api/{user_id}/tasks/{task_id}"),
        ("PATCH", "/api/{user_id}/tasks/{task_id}/complete"),
        ("GET", "/api/{user_id}/tasks/events"),
    }
    assert len({op["operationId"] for op in _operations(document)}) == 7
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    for ref in _refs(document):
        name = ref.removeprefix("#/components/schemas/")
        assert name in document["components"]["schemas"], ref
    task_schema = document["components"]["schemas"]["Task"]
    assert set(task_schema["required"]) == set(task_schema["properties"]) == REST_TASK_FIELDS
    # Every documented operation exists: without a token each is a 401, never a 404 or 405.
    for method, path in operations:
        concrete = path.replace("{user_id}", alice.user_id).replace("{task_id}", "1")
        answer = await http.request(method, concrete)
        assert answer.status_code == 401, (method, path)
        assert str(answer.status_code) in _operation(document, path, method)["responses"]


def _operations(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for item in document["paths"].values():
        for method, operation in item.items():
            if method != "parameters":
                yield operation


def _operation(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    return document["paths"][path][method.lower()]


def _refs(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref":
                yield item
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


# --- GraphQL only ------------------------------------------------------------------------------


async def graphql(
    http: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    return await http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=dict(headers or {})
    )


async def test_graphql_introspection_works_without_a_token(http: httpx.AsyncClient) -> None:
    response = await graphql(
        http, "{ __schema { queryType { name } mutationType { name } } __typename }"
    )

    assert response.status_code == 200
    assert response.json() == {
        "data": {
            "__schema": {"queryType": {"name": "Query"}, "mutationType": {"name": "Mutation"}},
            "__typename": "Query",
        }
    }


@pytest.mark.parametrize(
    "query",
    [
        "{ tasks { totalCount } }",
        "{ viewer { id } }",
        "{ __typename task(id: 1) { id } }",
        "{ __t: tasks { totalCount } }",
        "{ ... on Query { tasks { totalCount } } }",
        "query { ...__Sneaky } fragment __Sneaky on Query { tasks { totalCount } }",
        'mutation { createTask(input: {title: "x"}) { task { id } } }',
    ],
)
async def test_graphql_data_without_a_token_is_401(http: httpx.AsyncClient, query: str) -> None:
    response = await graphql(http, query)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body.get("data") is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]


async def test_graphql_an_invalid_token_is_401_even_for_introspection(
    http: httpx.AsyncClient,
) -> None:
    response = await graphql(http, "{ __typename }", headers=bearer("garbage"))

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_graphql_viewer_is_the_tokens_subject(http: httpx.AsyncClient) -> None:
    alice = new_caller("alice")

    response = await graphql(http, "{ viewer { id } }", headers=alice.headers)

    assert response.status_code == 200
    assert response.json() == {"data": {"viewer": {"id": alice.user_id}}}


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("{ tasks( ", 400, "GRAPHQL_PARSE_FAILED"),
        ("mutation {", 400, "GRAPHQL_PARSE_FAILED"),
        ("{ nope }", 422, "GRAPHQL_VALIDATION_FAILED"),
        ("{ tasks { nodes { owner_id } } }", 422, "GRAPHQL_VALIDATION_FAILED"),
        ('{ task(id: "1") }', 422, "GRAPHQL_VALIDATION_FAILED"),
        (
            "mutation { createTask(input: {title: 5}) { task { id } } }",
            422,
            "GRAPHQL_VALIDATION_FAILED",
        ),
    ],
)
async def test_graphql_request_errors(
    http: httpx.AsyncClient, alice: Caller, query: str, status: int, code: str
) -> None:
    response = await graphql(http, query, headers=alice.headers)

    assert response.status_code == status
    assert response.headers["content-type"] == GRAPHQL_RESPONSE
    body = response.json()
    assert "data" not in body
    assert [e["extensions"]["code"] for e in body["errors"]] == [code] * len(body["errors"])
    assert (await http.get(f"/api/{alice.user_id}/tasks", headers=alice.headers)).json() == []


async def test_graphql_request_errors_are_200_for_plain_json_clients(
    http: httpx.AsyncClient, alice: Caller
) -> None:
    response = await graphql(
        http, "{ nope }", headers={**alice.headers, "Accept": "application/json"}
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_graphql_queries_work_over_get(http: httpx.AsyncClient, alice: Caller) -> None:
    response = await http.get(
        "/graphql",
        params={
            "query": "query($n: Int) { viewer { id } tasks(first: $n) { totalCount } }",
            "variables": '{"n": 1}',
        },
        headers=alice.headers,
    )

    assert response.status_code == 200
    assert response.json() == {
        "data": {"viewer": {"id": alice.user_id}, "tasks": {"totalCount": 0}}
    }


async def test_graphql_mutations_over_get_are_405(http: httpx.AsyncClient, alice: Caller) -> None:
    response = await http.get(
        "/graphql",
        params={"query": 'mutation { createTask(input: {title: "x"}) { task { id } } }'},
        headers=alice.headers,
    )

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert (await http.get(f"/api/{alice.user_id}/tasks", headers=alice.headers)).json() == []


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (None, GRAPHQL_RESPONSE),
        ("*/*", GRAPHQL_RESPONSE),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", GRAPHQL_RESPONSE),
        ("application/json", "application/json"),
    ],
)
async def test_graphql_response_media_type(
    http: httpx.AsyncClient, alice: Caller, accept: str | None, media_type: str
) -> None:
    headers = dict(alice.headers)
    if accept is not None:
        headers["Accept"] = accept
    request = http.build_request(
        "POST", "/graphql", json={"query": "{ viewer { id } }"}, headers=headers
    )
    if accept is None:
        del request.headers["Accept"]

    response = await http.send(request)

    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.json() == {"data": {"viewer": {"id": alice.user_id}}}


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"query=%7Bviewer%7Bid%7D%7D", "application/x-www-form-urlencoded", 415),
        (b"{ viewer { id } }", "text/plain", 415),
        (b"{not json", "application/json", 400),
        (b'[{"query": "{ viewer { id } }"}]', "application/json", 400),
        (b'{"query": 5}', "application/json", 400),
        (b'{"query": "{ viewer { id } }", "variables": [1]}', "application/json", 400),
    ],
)
async def test_graphql_malformed_requests(
    http: httpx.AsyncClient, alice: Caller, content: bytes, content_type: str, status: int
) -> None:
    response = await http.post(
        "/graphql", content=content, headers={**alice.headers, "Content-Type": content_type}
    )

    assert response.status_code == status
    assert response.json()["errors"][0]["message"]


async def test_graphql_serves_graphiql_to_browsers(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", headers={"Accept": "text/html"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


async def test_graphql_a_version_conflict_returns_the_current_task(
    http: httpx.AsyncClient, alice: Caller
) -> None:
    door = GraphQLDoor(http)
    task = await create(door, alice, title="v1")
    await door.update(alice, task.id, {"title": "v2"})

    response = await graphql(
        http,
        'mutation($id: ID!) { updateTask(id: $id, input: {title: "v3"}, expectedVersion: 1) {'
        " task { id title version } userErrors { field message code } } }",
        {"id": str(task.id)},
        alice.headers,
    )

    assert response.status_code == 200
    payload = response.json()["data"]["updateTask"]
    assert payload["task"] == {"id": str(task.id), "title": "v2", "version": 2}
    [error] = payload["userErrors"]
    assert (error["field"], error["code"]) == (["expectedVersion"], "VERSION_CONFLICT")
    assert error["message"].endswith("current version is 2")


@pytest.mark.parametrize("task_id", ["abc", "", "-1", "1.0", " 1", "99999999999999999999"])
async def test_graphql_an_id_that_names_no_task(
    http: httpx.AsyncClient, alice: Caller, task_id: str
) -> None:
    await create(GraphQLDoor(http), alice)
    response = await graphql(
        http,
        """query($id: ID!) { task(id: $id) { id } }""",
        {"id": task_id},
        alice.headers,
    )
    mutations = await graphql(
        http,
        """mutation($id: ID!) {
          updateTask(id: $id, input: {title: "x"}) { task { id } userErrors { field code } }
          toggleTaskCompletion(id: $id) { task { id } userErrors { field code } }
          deleteTask(id: $id) { deletedTaskId userErrors { field code } }
        }""",
        {"id": task_id},
        alice.headers,
    )

    assert response.json() == {"data": {"task": None}}
    not_found = [{"field": ["id"], "code": "NOT_FOUND"}]
    assert mutations.json() == {
        "data": {
            "updateTask": {"task": None, "userErrors": not_found},
            "toggleTaskCompletion": {"task": None, "userErrors": not_found},
            "deleteTask": {"deletedTaskId": None, "userErrors": not_found},
        }
    }


async def test_graphql_pagination_walks_every_task_once(
    http: httpx.AsyncClient, alice: Caller, bob: Caller
) -> None:
    door = GraphQLDoor(http)
    created = [(await create(door, alice, title=f"task {n}")).id for n in range(7)]
    await create(door, bob, title="not alice's")
    query = """query($after: String) { tasks(first: 3, after: $after) {
        totalCount
        edges { cursor node { id } }
        nodes { id }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    } }"""

    seen: list[int] = []
    pages: list[bool] = []
    after = None
    for _ in range(5):
        response = await graphql(http, query, {"after": after}, alice.headers)
        connection = response.json()["data"]["tasks"]
        assert connection["totalCount"] == 7
        nodes = [int(node["id"]) for node in connection["nodes"]]
        assert [int(edge["node"]["id"]) for edge in connection["edges"]] == nodes
        page_info = connection["pageInfo"]
        assert page_info["startCursor"] == connection["edges"][0]["cursor"]
        assert page_info["endCursor"] == connection["edges"][-1]["cursor"]
        seen += nodes
        pages.append(page_info["hasNextPage"])
        if not page_info["hasNextPage"]:
            break
        after = page_info["endCursor"]

    assert seen == created
    assert pages == [True, True, False]


async def test_graphql_pagination_edges(http: httpx.AsyncClient, alice: Caller) -> None:
    empty = await graphql(
        http,
        "{ tasks(first: 5) { totalCount nodes { id } pageInfo { hasNextPage endCursor } } }",
        headers=alice.headers,
    )
    assert empty.json()["data"]["tasks"] == {
        "totalCount": 0,
        "nodes": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
    }

    for first, after in [(-1, None), (101, None), (5, "not-a-cursor"), (5, "WzFd")]:
        response = await graphql(
            http,
            "query($first: Int, $after: String) {"
            " tasks(first: $first, after: $after) { totalCount } }",
            {"first": first, "after": after},
            alice.headers,
        )
        body = response.json()
        assert body["data"] is None, (first, after)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", (first, after)


@pytest_asyncio.fixture(loop_scope="module")
async def unmigrated_database(admin_database_url: str) -> AsyncIterator[str]:
    """A database without the tasks table: the app's queries fail in a way it does not expect."""
    async with empty_database(admin_database_url, "taskql_unmigrated") as url:
        yield url


async def test_unexpected_errors_are_masked_and_logged(
    unmigrated_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    alice = new_caller("alice")
    headers = {**alice.headers, "X-Request-Id": "req-masked-1"}
    caplog.set_level(logging.ERROR)
    async with app_client(make_settings(unmigrated_database)) as client:
        # Starlette re-raises after sending its 500 so that the server can log it too; the
        # client of a real server sees only the response, so this one should as well.
        client._transport.raise_app_exceptions = False
        graphql_response = await graphql(client, "{ tasks { totalCount } }", headers=headers)
        rest_response = await client.get(f"/api/{alice.user_id}/tasks", headers=headers)

    assert graphql_response.status_code == 200
    body = graphql_response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["message"] == "Internal server error"
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-masked-1"}
    assert error["path"] == ["tasks"]
    assert rest_response.status_code == 500
    assert rest_response.json() == {"detail": "Internal server error"}
    for leaky in ("relation", 'tasks" does not exist', "Undefined", "asyncpg", "SELECT"):
        assert leaky not in graphql_response.text
        assert leaky not in rest_response.text
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 2
    assert all("req-masked-1" in record.getMessage() for record in logged)
    assert all(record.exc_info for record in logged)


# --- tokens from an auth service's JWKS, end to end --------------------------------------------

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


@pytest.mark.parametrize("algorithm", list(KEYS))
async def test_jwks_tokens_work_through_both_doors(
    jwks_http: httpx.AsyncClient, algorithm: str
) -> None:
    user_id = better_auth_user_id()
    assert len(user_id) == 32
    headers = bearer(better_auth_token(KEYS[algorithm], user_id))

    created = await jwks_http.post(
        f"/api/{user_id}/tasks", json={"title": "from Better Auth"}, headers=headers
    )
    viewer = await graphql(
        jwks_http, "{ viewer { id } tasks { nodes { id title } } }", headers=headers
    )

    assert created.status_code == 201
    assert viewer.status_code == 200
    assert viewer.json()["data"] == {
        "viewer": {"id": user_id},
        "tasks": {"nodes": [{"id": str(created.json()["id"]), "title": "from Better Auth"}]},
    }


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

    rest = await jwks_http.get(f"/api/{path_user}/tasks", headers=bearer(token))
    graph = await graphql(jwks_http, "{ viewer { id } }", headers=bearer(token))

    if problem == "wrong-user":
        assert rest.status_code == 403
        assert graph.json() == {"data": {"viewer": {"id": user_id}}}
        return
    assert rest.status_code == 401
    assert rest.headers["www-authenticate"].startswith("Bearer")
    assert graph.status_code == 401
    assert graph.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
