"""Tasks fetched by id are batched per request: one SQL statement, never another user's task."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

import main
from tests.support.app import log_request_statements, running_app
from tests.support.graphql import graphql, seed_tasks
from tests.support.listing import task_rows

Auth = Callable[[str], dict[str, str]]


class StatementLog:
    """Every SQL statement the app's engine sends to PostgreSQL."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, record: Any) -> None:
        self.statements.append(record.query)

    def on_tasks(self) -> list[str]:
        """Statements that read or write tasks: on the table, or through a write function."""
        return [s for s in self.statements if "tasks" in s or "taskql_" in s]

    def kinds(self) -> list[str]:
        """Each statement on tasks as "read" or the write function it calls."""
        return [
            next((word for word in s.split() if word.startswith("taskql_")), "read").split("(")[0]
            for s in self.on_tasks()
        ]


@pytest.fixture
async def app(settings: main.Settings) -> AsyncIterator[tuple[httpx.AsyncClient, StatementLog]]:
    async with running_app(settings) as (http, state):
        log = StatementLog()
        # asyncpg's own query log: every statement the app's pool sends.
        await log_request_statements(state, log)
        yield http, log


def aliased_lookups(ids: list[int]) -> str:
    fields = " ".join(
        f't{n}: task(id: "{task_id}") {{ id title }}' for n, task_id in enumerate(ids)
    )
    return f"{{ {fields} }}"


async def test_fifty_aliased_lookups_are_one_statement(
    app: tuple[httpx.AsyncClient, StatementLog], auth: Auth, clean_database: str
) -> None:
    http, log = app
    ids = await seed_tasks(clean_database, "alice", task_rows(50, seed=1))
    body = await graphql(http, aliased_lookups(ids), headers=auth("alice"))
    assert [int(body["data"][f"t{n}"]["id"]) for n in range(50)] == ids
    assert len(log.on_tasks()) == 1, log.on_tasks()


async def test_a_batch_never_returns_another_users_tasks(
    app: tuple[httpx.AsyncClient, StatementLog], auth: Auth, clean_database: str
) -> None:
    http, log = app
    mine = await seed_tasks(clean_database, "alice", task_rows(3, seed=2))
    theirs = await seed_tasks(clean_database, "bob", task_rows(3, seed=3))
    body = await graphql(http, aliased_lookups(mine + theirs), headers=auth("alice"))
    found = [body["data"][f"t{n}"] for n in range(6)]
    assert [int(task["id"]) for task in found[:3]] == mine
    assert found[3:] == [None, None, None]
    assert len(log.on_tasks()) == 1


async def test_loaders_live_for_one_request_only(
    app: tuple[httpx.AsyncClient, StatementLog], auth: Auth, clean_database: str
) -> None:
    http, log = app
    [task_id] = await seed_tasks(clean_database, "alice", task_rows(1, seed=4))
    query = aliased_lookups([task_id])
    await graphql(http, query, headers=auth("alice"))
    renamed = await http.put(
        f"/api/alice/tasks/{task_id}", json={"title": "renamed"}, headers=auth("alice")
    )
    assert renamed.status_code == 200
    assert (await graphql(http, query, headers=auth("alice")))["data"]["t0"]["title"] == "renamed"
    # The same id asked for by someone else is looked up again, as theirs, and not found.
    assert (await graphql(http, query, headers=auth("bob")))["data"]["t0"] is None
    assert log.kinds() == ["read", "taskql_update_task", "read", "read"]
