"""taskCounts: all, active, completed and overdue beside the list, in one SQL statement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.app import log_request_statements, make_settings, running_app
from tests.support.graphql import seed_tasks
from tests.support.tokens import hs256_token

NOW = datetime.now(UTC)
PAST, FUTURE = NOW - timedelta(days=1), NOW + timedelta(days=1)
ROWS = [
    ("buy milk", "", False, None, NOW, NOW),
    ("file taxes", "", False, PAST, NOW, NOW),
    ("pay rent", "", True, PAST, NOW, NOW),
    ("plan trip", "milk money", False, FUTURE, NOW, NOW),
    ("sweep", "", True, None, NOW, NOW),
]
LIST_AND_COUNTS = """
query Screen($filter: TaskFilter, $countFilter: TaskFilter) {
  tasks(first: 10, filter: $filter) { nodes { title } }
  taskCounts(filter: $countFilter) { all active completed overdue }
}
"""


@pytest.mark.parametrize(
    ("count_filter", "expected"),
    [
        (None, {"all": 5, "active": 3, "completed": 2, "overdue": 1}),
        ({"search": "milk"}, {"all": 2, "active": 2, "completed": 0, "overdue": 0}),
        ({"dueBefore": NOW.isoformat()}, {"all": 2, "active": 1, "completed": 1, "overdue": 1}),
    ],
)
async def test_counts_come_beside_the_list_in_one_statement(
    clean_database: str, count_filter: dict[str, str] | None, expected: dict[str, int]
) -> None:
    await seed_tasks(clean_database, "alice", ROWS)
    await seed_tasks(clean_database, "bob", ROWS)
    statements: list[str] = []
    async with running_app(make_settings(clean_database)) as (http, state):
        await log_request_statements(state, lambda record: statements.append(record.query))
        response = await http.post(
            "/graphql",
            json={
                "query": LIST_AND_COUNTS,
                "variables": {"filter": {"completed": False}, "countFilter": count_filter},
            },
            headers={"Authorization": f"Bearer {hs256_token('alice')}"},
        )

    data = response.json()["data"]
    assert [node["title"] for node in data["tasks"]["nodes"]] == [
        "buy milk",
        "file taxes",
        "plan trip",
    ]
    assert data["taskCounts"] == expected
    # One for the page, one for the counts: every count comes from the same scan.
    assert len(statements) == 2
    assert sum("FILTER (WHERE" in statement for statement in statements) == 1


async def test_counts_need_a_viewer(clean_database: str) -> None:
    async with running_app(make_settings(clean_database)) as (http, _state):
        response = await http.post("/graphql", json={"query": "{ taskCounts { all } }"})

    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
