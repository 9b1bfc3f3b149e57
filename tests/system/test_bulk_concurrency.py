"""Bulk completion racing single toggles and deletes of the same tasks, on real PostgreSQL
connections: every change lands once, in one order that the versions and events agree on."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.app import make_settings, running_app
from tests.support.tokens import hs256_token

USER = "racer"
TASKS = 24
TOGGLES_PER_TASK = 3
DELETED = 4
# Alternating directions, so bulk changes keep finding tasks to change.
BULK_COMPLETIONS = (True, False, True, False, True)


async def _create(http: httpx.AsyncClient, headers: dict[str, str], n: int) -> int:
    response = await http.post(f"/api/{USER}/tasks", json={"title": f"task {n}"}, headers=headers)
    assert response.status_code == 201
    return int(response.json()["id"])


@pytest.mark.slow
async def test_bulk_completion_racing_toggles_and_deletes_loses_nothing(
    clean_database: str,
) -> None:
    settings = make_settings(clean_database, DB_POOL_SIZE="8")
    headers = {"Authorization": f"Bearer {hs256_token(USER)}"}
    rng = random.Random(15)
    async with running_app(settings) as (http, _state):
        ids = [await _create(http, headers, n) for n in range(TASKS)]
        doomed = set(rng.sample(ids, DELETED))

        async def toggle(task_id: int) -> tuple[str, int, Any]:
            response = await http.patch(f"/api/{USER}/tasks/{task_id}/complete", headers=headers)
            return ("toggle", task_id, response)

        async def delete(task_id: int) -> tuple[str, int, Any]:
            response = await http.delete(f"/api/{USER}/tasks/{task_id}", headers=headers)
            return ("delete", task_id, response)

        async def bulk(completed: bool) -> tuple[str, int, Any]:
            response = await http.patch(
                f"/api/{USER}/tasks",
                params={"all": "true"},
                json={"completed": completed},
                headers=headers,
            )
            return ("bulk", int(completed), response)

        calls = [toggle(task_id) for task_id in ids for _ in range(TOGGLES_PER_TASK)]
        calls += [delete(task_id) for task_id in doomed]
        calls += [bulk(completed) for completed in BULK_COMPLETIONS]
        rng.shuffle(calls)
        outcomes = await asyncio.gather(*calls)

    changes: dict[int, int] = defaultdict(int)
    deleted: set[int] = set()
    bulk_changes = 0
    for kind, subject, response in outcomes:
        if kind == "bulk":
            assert response.status_code == 200, response.text
            listed = response.json()["tasks"]
            assert all(task["completed"] == bool(subject) for task in listed)
            for task in listed:
                changes[task["id"]] += 1
            bulk_changes += len(listed)
        elif kind == "toggle":
            # A toggle only fails when its task was deleted before it.
            if response.status_code == 404:
                assert subject in doomed
            else:
                assert response.status_code == 200, response.text
                changes[subject] += 1
        else:
            assert response.status_code == 204, response.text
            deleted.add(subject)
    assert deleted == doomed
    assert bulk_changes > 0

    conn = await asyncpg.connect(clean_database)
    try:
        stored = {
            row["id"]: (row["completed"], row["version"])
            for row in await conn.fetch(
                "SELECT id, completed, version FROM tasks WHERE owner_id = $1", USER
            )
        }
        events = await conn.fetch(
            "SELECT position, kind, task_id, completed, version FROM task_events "
            "WHERE owner_id = $1 ORDER BY position",
            USER,
        )
    finally:
        await conn.close()

    assert set(stored) == set(ids) - doomed
    # Each change is one event: creations, changes, deletions. Their positions order them as
    # they committed: each task's versions rise in that order (below).
    assert len(events) == TASKS + sum(changes.values()) + DELETED
    by_task: dict[int, list[asyncpg.Record]] = defaultdict(list)
    for event in events:
        by_task[event["task_id"]].append(event)
    for task_id in ids:
        history = by_task[task_id]
        assert history[0]["kind"] == "created"
        # Versions rise by one with every change (a deletion keeps the version it deleted),
        # and every change flips completion: a bulk change only writes tasks whose completion
        # differs, so no toggle was lost or undone.
        changed = [event for event in history if event["kind"] != "deleted"]
        assert [event["version"] for event in changed] == list(range(1, len(changed) + 1))
        completed = False
        for event in history[1:]:
            if event["kind"] == "deleted":
                assert event is history[-1]
                continue
            assert event["kind"] == "completion_toggled"
            assert event["completed"] is (not completed)
            completed = event["completed"]
        if task_id in doomed:
            assert history[-1]["kind"] == "deleted"
            assert history[-1]["version"] == changed[-1]["version"]
            assert len(history) == 1 + changes[task_id] + 1
        else:
            assert stored[task_id] == (completed, 1 + changes[task_id])
            assert len(history) == 1 + changes[task_id]
