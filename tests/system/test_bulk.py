"""Bulk changes by filter through both doors: GraphQL's setTasksCompletion / deleteTasks and
REST's PATCH / DELETE /api/{user_id}/tasks give the same outcomes, refusals and events."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

import main
from tests.support.app import log_request_statements, make_settings, running_app
from tests.support.databases import create_migrated_database, drop_database
from tests.support.graphql import seed_tasks
from tests.support.tokens import hs256_token

NOW = datetime.now(UTC)
PAST = NOW - timedelta(days=3)
FUTURE = NOW + timedelta(days=3)

SET_COMPLETION = """
mutation Set($completed: Boolean!, $filter: TaskFilter, $all: AllTasks) {
  setTasksCompletion(completed: $completed, filter: $filter, all: $all) {
    count
    tasks { id completed version }
    userErrors { field message code }
  }
}
"""
DELETE = """
mutation Clear($filter: TaskFilter, $all: AllTasks) {
  deleteTasks(filter: $filter, all: $all) {
    count
    deletedTaskIds
    userErrors { field message code }
  }
}
"""
# Domain filter names as each door spells them.
GRAPHQL_NAMES = {"due_before": "dueBefore", "due_after": "dueAfter"}
REST_NAMES = {"search": "q"}


@dataclass(frozen=True)
class Outcome:
    """What a door answered: the changed tasks' ids, or the refusal's code."""

    status: int
    ids: list[int]
    error: str | None = None


@dataclass
class Door:
    """One door's bulk operations, as one user."""

    name: str
    http: httpx.AsyncClient
    user: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {hs256_token(self.user)}"}

    async def set_completion(
        self, completed: bool, filters: dict[str, Any] | None = None, *, every: bool = False
    ) -> Outcome:
        if self.name == "rest":
            response = await self.http.patch(
                f"/api/{self.user}/tasks",
                params=_rest_params(filters, every),
                json={"completed": completed},
                headers=self.headers,
            )
            return _rest_outcome(response, lambda body: [t["id"] for t in body["tasks"]])
        variables = {"completed": completed, **_graphql_selection(filters, every)}
        payload = await self._graphql(SET_COMPLETION, variables, "setTasksCompletion")
        if isinstance(payload, Outcome):
            return payload
        ids = [int(task["id"]) for task in payload["tasks"]]
        assert payload["count"] == len(ids)
        return _graphql_outcome(payload, ids)

    async def delete(
        self, filters: dict[str, Any] | None = None, *, every: bool = False
    ) -> Outcome:
        if self.name == "rest":
            response = await self.http.delete(
                f"/api/{self.user}/tasks", params=_rest_params(filters, every), headers=self.headers
            )
            return _rest_outcome(response, lambda body: body["deleted_task_ids"])
        payload = await self._graphql(DELETE, _graphql_selection(filters, every), "deleteTasks")
        if isinstance(payload, Outcome):
            return payload
        ids = [int(task_id) for task_id in payload["deletedTaskIds"]]
        assert payload["count"] == len(ids)
        return _graphql_outcome(payload, ids)

    async def _graphql(
        self, query: str, variables: dict[str, Any], field: str
    ) -> dict[str, Any] | Outcome:
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables}, headers=self.headers
        )
        body = response.json()
        if "errors" in body:
            return Outcome(response.status_code, [], body["errors"][0]["extensions"]["code"])
        payload: dict[str, Any] = body["data"][field]
        return payload


def _rest_params(filters: dict[str, Any] | None, every: bool) -> dict[str, str]:
    params = {REST_NAMES.get(k, k): _query_value(v) for k, v in (filters or {}).items()}
    return {**params, "all": "true"} if every else params


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _graphql_selection(filters: dict[str, Any] | None, every: bool) -> dict[str, Any]:
    variables: dict[str, Any] = {}
    if filters is not None:
        variables["filter"] = {
            GRAPHQL_NAMES.get(k, k): v.isoformat() if isinstance(v, datetime) else v
            for k, v in filters.items()
        }
    if every:
        variables["all"] = "ALL_TASKS"
    return variables


def _rest_outcome(response: httpx.Response, ids: Callable[[Any], list[int]]) -> Outcome:
    body = response.json()
    if response.status_code == 200:
        assert body["count"] == len(ids(body))
        return Outcome(200, ids(body))
    detail = body["detail"]
    # A 422 lists its errors; other refusals (401, 403, 503) say one thing.
    kind = detail[0]["type"].upper() if isinstance(detail, list) else None
    return Outcome(response.status_code, [], kind)


def _graphql_outcome(payload: dict[str, Any], ids: list[int]) -> Outcome:
    errors = payload["userErrors"]
    if errors:
        assert (payload["count"], ids) == (0, [])
        return Outcome(200, [], errors[0]["code"])
    return Outcome(200, ids)


@pytest.fixture(params=["rest", "graphql"])
def door_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def door(door_name: str, client: httpx.AsyncClient) -> Door:
    return Door(door_name, client, f"alice-{uuid.uuid4().hex[:8]}")


Row = tuple[str, str, bool, datetime | None, datetime, datetime]


def task(title: str, *, completed: bool = False, due: datetime | None = None) -> Row:
    return (title, "", completed, due, NOW, NOW)


async def seed(url: str, user: str, *rows: Row) -> dict[str, int]:
    """The user's tasks, by title."""
    ids = await seed_tasks(url, user, list(rows))
    return {row[0]: task_id for row, task_id in zip(rows, ids, strict=True)}


async def tasks_of(url: str, user: str) -> dict[int, tuple[bool, int]]:
    """The user's tasks as they are stored: id -> (completed, version)."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT id, completed, version FROM tasks WHERE owner_id = $1 ORDER BY id", user
        )
    finally:
        await conn.close()
    return {row["id"]: (row["completed"], row["version"]) for row in rows}


async def events_of(url: str, user: str) -> list[tuple[str, int, bool | None, int]]:
    """The user's recorded events in position order: (kind, task id, completed, version)."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT kind, task_id, completed, version FROM task_events "
            "WHERE owner_id = $1 ORDER BY position",
            user,
        )
    finally:
        await conn.close()
    return [(row["kind"], row["task_id"], row["completed"], row["version"]) for row in rows]


async def test_completion_changes_the_matching_tasks_only_and_bumps_their_versions(
    door: Door, clean_database: str
) -> None:
    ids = await seed(
        clean_database,
        door.user,
        task("buy milk"),
        task("bake bread"),
        task("milk the cow", completed=True),
        task("file taxes", due=PAST),
    )

    outcome = await door.set_completion(True, {"search": "milk"})

    # "milk the cow" matches but is completed already: left alone, not listed.
    assert outcome == Outcome(200, [ids["buy milk"]])
    assert await tasks_of(clean_database, door.user) == {
        ids["buy milk"]: (True, 2),
        ids["bake bread"]: (False, 1),
        ids["milk the cow"]: (True, 1),
        ids["file taxes"]: (False, 1),
    }


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"completed": False}, ["buy milk", "file taxes", "plan trip"]),
        ({"overdue": True}, ["file taxes"]),
        ({"overdue": False, "completed": False}, ["buy milk", "plan trip"]),
        ({"due_before": NOW}, ["file taxes"]),
        ({"due_after": NOW}, ["plan trip"]),
        ({"search": "TRIP"}, ["plan trip"]),
    ],
)
async def test_every_listing_filter_selects_the_same_tasks_in_both_doors(
    door: Door, clean_database: str, filters: dict[str, Any], expected: list[str]
) -> None:
    ids = await seed(
        clean_database,
        door.user,
        task("buy milk"),
        task("file taxes", due=PAST),
        task("plan trip", due=FUTURE),
        task("done already", completed=True, due=PAST),
    )

    outcome = await door.set_completion(True, filters)

    assert outcome == Outcome(200, sorted(ids[title] for title in expected))


async def test_clearing_completed_deletes_them_and_records_one_event_each(
    door: Door, clean_database: str
) -> None:
    ids = await seed(
        clean_database,
        door.user,
        task("a", completed=True),
        task("b"),
        task("c", completed=True),
    )

    outcome = await door.delete({"completed": True})

    assert outcome == Outcome(200, [ids["a"], ids["c"]])
    assert await tasks_of(clean_database, door.user) == {ids["b"]: (False, 1)}
    assert await events_of(clean_database, door.user) == [
        ("deleted", ids["a"], None, 1),
        ("deleted", ids["c"], None, 1),
    ]


async def test_completion_records_one_event_per_changed_task(
    door: Door, clean_database: str
) -> None:
    ids = await seed(clean_database, door.user, task("a"), task("b", completed=True), task("c"))

    await door.set_completion(True, {"completed": False})
    await door.set_completion(False, {"search": "a"})

    events = await events_of(clean_database, door.user)
    assert sorted(events[:2]) == [
        ("completion_toggled", ids["a"], True, 2),
        ("completion_toggled", ids["c"], True, 2),
    ]
    assert events[2:] == [("completion_toggled", ids["a"], False, 3)]


@pytest.mark.parametrize(
    "filters",
    [None, {}, {"completed": None}, {"search": ""}],
    ids=["no filter", "empty filter", "null conditions", "empty search"],
)
async def test_an_empty_filter_is_refused_and_changes_nothing(
    door: Door, clean_database: str, filters: dict[str, Any] | None
) -> None:
    ids = await seed(clean_database, door.user, task("a"), task("b", completed=True))
    if door.name == "rest" and filters is not None:
        # REST has no null: a condition is given or it is not.
        filters = {k: v for k, v in filters.items() if v is not None}

    completion = await door.set_completion(True, filters)
    deletion = await door.delete(filters)

    expected_status = 422 if door.name == "rest" else 200
    assert completion == Outcome(expected_status, [], "EMPTY_FILTER")
    assert deletion == Outcome(expected_status, [], "EMPTY_FILTER")
    assert await tasks_of(clean_database, door.user) == {ids["a"]: (False, 1), ids["b"]: (True, 1)}
    assert await events_of(clean_database, door.user) == []


async def test_all_acts_on_every_task_of_the_viewer_and_no_one_else(
    door: Door, clean_database: str
) -> None:
    mine = await seed(clean_database, door.user, task("a"), task("b", completed=True))
    bob = f"bob-{uuid.uuid4().hex[:8]}"
    theirs = await seed(clean_database, bob, task("a"), task("b", completed=True))

    completed = await door.set_completion(True, every=True)
    deleted = await door.delete(every=True)

    assert completed == Outcome(200, [mine["a"]])
    assert deleted == Outcome(200, sorted(mine.values()))
    assert await tasks_of(clean_database, door.user) == {}
    assert await tasks_of(clean_database, bob) == {
        theirs["a"]: (False, 1),
        theirs["b"]: (True, 1),
    }
    assert await events_of(clean_database, bob) == []


async def test_all_with_a_filter_is_refused(door: Door, clean_database: str) -> None:
    await seed(clean_database, door.user, task("a", completed=True))

    outcome = await door.delete({"completed": True}, every=True)

    assert outcome == Outcome(422 if door.name == "rest" else 200, [], "ALL_WITH_FILTER")
    assert len(await tasks_of(clean_database, door.user)) == 1


async def test_other_users_tasks_never_match(door: Door, clean_database: str) -> None:
    await seed(clean_database, "bob", task("milk"), task("more milk", completed=True))

    assert await door.set_completion(True, {"search": "milk"}) == Outcome(200, [])
    assert await door.delete({"search": "milk"}) == Outcome(200, [])
    assert list((await tasks_of(clean_database, "bob")).values()) == [(False, 1), (True, 1)]


async def test_anonymous_and_foreign_callers_are_refused(
    client: httpx.AsyncClient, clean_database: str
) -> None:
    await seed(clean_database, "alice", task("a", completed=True))
    bob = {"Authorization": f"Bearer {hs256_token('bob')}"}

    anonymous_rest = await client.delete("/api/alice/tasks", params={"completed": "true"})
    foreign_rest = await client.delete(
        "/api/alice/tasks", params={"completed": "true"}, headers=bob
    )
    foreign_patch = await client.patch(
        "/api/alice/tasks", params={"all": "true"}, json={"completed": False}, headers=bob
    )
    anonymous_graphql = await client.post(
        "/graphql", json={"query": DELETE, "variables": {"all": "ALL_TASKS"}}
    )

    assert anonymous_rest.status_code == 401
    assert (foreign_rest.status_code, foreign_patch.status_code) == (403, 403)
    assert anonymous_graphql.status_code == 401
    assert anonymous_graphql.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert list((await tasks_of(clean_database, "alice")).values()) == [(True, 1)]


@pytest.fixture
async def small_limit(clean_database: str, door_name: str) -> AsyncIterator[Door]:
    """A door on an app that changes at most 3 tasks per request."""
    settings = make_settings(clean_database, BULK_MAX_TASKS="3")
    async with running_app(settings) as (http, _state):
        yield Door(door_name, http, f"carol-{uuid.uuid4().hex[:8]}")


async def test_more_matching_tasks_than_the_maximum_is_refused_whole(
    small_limit: Door, clean_database: str
) -> None:
    door = small_limit
    ids = await seed(clean_database, door.user, *(task(f"t{n}") for n in range(4)))

    too_many = await door.set_completion(True, {"completed": False})
    too_many_deletions = await door.delete(every=True)

    status = 422 if door.name == "rest" else 200
    assert too_many == Outcome(status, [], "TOO_MANY_TASKS")
    assert too_many_deletions == Outcome(status, [], "TOO_MANY_TASKS")
    assert set((await tasks_of(clean_database, door.user)).values()) == {(False, 1)}
    # Exactly the maximum is allowed; only tasks whose completion changes count.
    assert await door.set_completion(True, {"search": "t"}) == Outcome(status, [], "TOO_MANY_TASKS")
    await door.set_completion(True, {"search": "t0"})
    assert await door.set_completion(True, {"search": "t"}) == Outcome(
        200, [ids["t1"], ids["t2"], ids["t3"]]
    )


async def test_the_refusal_names_the_limit(small_limit: Door, clean_database: str) -> None:
    door = small_limit
    await seed(clean_database, door.user, *(task(f"t{n}") for n in range(4)))
    if door.name == "rest":
        response = await door.http.delete(
            f"/api/{door.user}/tasks", params={"all": "true"}, headers=door.headers
        )
        [error] = response.json()["detail"]
        assert error["loc"] == ["query"]
        message = error["msg"]
    else:
        body = (
            await door.http.post(
                "/graphql",
                json={"query": DELETE, "variables": {"all": "ALL_TASKS"}},
                headers=door.headers,
            )
        ).json()
        [error] = body["data"]["deleteTasks"]["userErrors"]
        assert error["field"] is None
        message = error["message"]
    assert "at most 3" in message
    assert "BULK_MAX_TASKS" in message


async def test_rest_refuses_parameters_a_bulk_change_does_not_take(
    client: httpx.AsyncClient, auth: Callable[[str], dict[str, str]], clean_database: str
) -> None:
    await seed(clean_database, "alice", task("a", completed=True), task("b", completed=True))

    limited = await client.delete(
        "/api/alice/tasks", params={"completed": "true", "limit": "1"}, headers=auth("alice")
    )
    misspelt = await client.delete(
        "/api/alice/tasks", params={"completed": "true", "overdu": "1"}, headers=auth("alice")
    )

    for response, name in ((limited, "limit"), (misspelt, "overdu")):
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", name]
        assert response.json()["detail"][0]["type"] == "extra_forbidden"
    assert len(await tasks_of(clean_database, "alice")) == 2


@pytest.mark.parametrize(
    ("body", "field", "kind"),
    [
        ({}, "completed", "missing"),
        ({"completed": "yes"}, "completed", "bool_type"),
        ({"completed": True, "title": "x"}, "title", "extra_forbidden"),
    ],
)
async def test_rest_completion_body_holds_completed_alone(
    client: httpx.AsyncClient,
    auth: Callable[[str], dict[str, str]],
    clean_database: str,
    body: dict[str, Any],
    field: str,
    kind: str,
) -> None:
    await seed(clean_database, "alice", task("a"))

    response = await client.patch(
        "/api/alice/tasks", params={"all": "true"}, json=body, headers=auth("alice")
    )

    assert response.status_code == 422
    assert {"loc": ["body", field], "type": kind} == {
        k: v for k, v in response.json()["detail"][0].items() if k != "msg"
    }
    assert list((await tasks_of(clean_database, "alice")).values()) == [(False, 1)]


async def test_graphql_reports_a_bad_filter_value_under_filter(
    client: httpx.AsyncClient, auth: Callable[[str], dict[str, str]]
) -> None:
    response = await client.post(
        "/graphql",
        json={"query": DELETE, "variables": {"filter": {"search": "nul\u0000"}}},
        headers=auth("alice"),
    )

    [error] = response.json()["data"]["deleteTasks"]["userErrors"]
    assert error["field"] == ["filter", "search"]
    assert error["code"] == "STRING_NUL"


async def test_each_bulk_change_is_one_statement(clean_database: str) -> None:
    await seed(clean_database, "alice", *(task(f"t{n}") for n in range(20)))
    statements: list[str] = []
    async with running_app(make_settings(clean_database)) as (http, state):
        await log_request_statements(state, lambda record: statements.append(record.query))
        headers = {"Authorization": f"Bearer {hs256_token('alice')}"}
        completed = await http.patch(
            "/api/alice/tasks", params={"all": "true"}, json={"completed": True}, headers=headers
        )
        deleted = await http.delete("/api/alice/tasks", params={"all": "true"}, headers=headers)
    assert (completed.json()["count"], deleted.json()["count"]) == (20, 20)
    assert len(statements) == 2


# Atomicity: a failure part-way, after some tasks were changed by the statement, leaves them all
# as they were. A trigger sleeps on the sixth task the statement changes, whichever it is, so
# five were written when the statement timeout cancels it.
SLOW_SIXTH = """
CREATE FUNCTION slow_sixth() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    seen integer := coalesce(nullif(current_setting('test.rows_seen', true), ''), '0')::integer;
BEGIN
    PERFORM set_config('test.rows_seen', (seen + 1)::text, true);
    IF seen + 1 = 6 THEN
        PERFORM pg_sleep(5);
    END IF;
    RETURN COALESCE(NEW, OLD);
END
$$;
CREATE TRIGGER slow_sixth BEFORE UPDATE OR DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION slow_sixth();
"""


@pytest.fixture
async def slow_database(admin_database_url: str) -> AsyncIterator[str]:
    """A migrated database of its own, where a statement's sixth task takes 5 s to change."""
    name = f"taskql_bulk_{uuid.uuid4().hex[:12]}"
    url = await create_migrated_database(admin_database_url, name)
    try:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(SLOW_SIXTH)
        finally:
            await conn.close()
        yield url
    finally:
        await drop_database(admin_database_url, name)


@pytest.mark.slow
async def test_a_failure_part_way_changes_nothing(door_name: str, slow_database: str) -> None:
    user = "alice"
    ids = await seed(slow_database, user, *(task(f"t{n}") for n in range(8)))
    settings: main.Settings = make_settings(slow_database, DB_STATEMENT_TIMEOUT="1")
    async with running_app(settings) as (http, _state):
        door = Door(door_name, http, user)
        completion = await door.set_completion(True, every=True)
        deletion = await door.delete(every=True)

    assert completion.status == deletion.status == 503
    if door_name == "graphql":
        assert completion.error == deletion.error == "SERVICE_UNAVAILABLE"
    assert await tasks_of(slow_database, user) == dict.fromkeys(ids.values(), (False, 1))
    assert await events_of(slow_database, user) == []
