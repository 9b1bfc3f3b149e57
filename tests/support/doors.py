"""The two doors, REST and GraphQL, behind one interface, so that one scenario runs through both.

Each door turns its own dialect (status codes, ETags, userErrors) into an Outcome; a door also
checks on the way what must hold for every response of its kind (media types, UTC date-times,
exactly the documented fields), so every scenario checks it too.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import httpx

from tests.support.graphql import GRAPHQL_RESPONSE
from tests.support.tokens import bearer, hs256_token


@dataclass(frozen=True)
class Caller:
    """Who a request claims to be (the REST path's user) and the headers it sends."""

    user_id: str
    headers: Mapping[str, str]


def new_caller(prefix: str = "user") -> Caller:
    """A user of its own (a fresh random id) with a valid token."""
    user_id = f"{prefix}-{uuid.uuid4().hex}"
    return Caller(user_id, bearer(hs256_token(user_id)))


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
        if response.status_code == 400:
            # Input the schema's types refuse (such as a malformed DateTime) is a request error,
            # the same outcome as REST's 422.
            [error] = body["errors"]
            assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
            path = re.search(r"invalid value at \.(\w+)", error["message"])
            field = _snake(path.group(1)) if path else "?"
            return 422, Outcome("invalid", 422, problems=(Problem(field, error["message"]),))
        assert response.status_code == 200, response.text
        assert "errors" not in body, body
        return 200, body["data"]


async def create(door: Door, caller: Caller, **body: Any) -> TaskView:
    """A new task of `caller`'s, made through `door`, which must succeed."""
    outcome = await door.create(caller, {"title": "A task", **body})
    assert outcome.kind == "ok", outcome
    return outcome.task


async def current(door: Door, caller: Caller, task_id: int) -> TaskView:
    """The task as `door` shows it to `caller` now, which must exist."""
    outcome = await door.get(caller, task_id)
    assert outcome.kind == "ok", outcome
    return outcome.task


OPERATIONS = ["get", "update", "toggle", "delete"]


async def operate(door: Door, caller: Caller, operation: str, task_id: int) -> Outcome:
    """One of OPERATIONS on a task, as `caller`; an update sets a title and completes it."""
    if operation == "get":
        return await door.get(caller, task_id)
    if operation == "update":
        return await door.update(caller, task_id, {"title": "mine now", "completed": True})
    if operation == "toggle":
        return await door.toggle(caller, task_id)
    return await door.delete(caller, task_id)
