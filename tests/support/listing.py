"""Task lists to page through: rows with ties in every order, and the order the API promises."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

BASE = datetime(2026, 1, 1, tzinfo=UTC)

# One page of the GraphQL listing, in any order and direction, with what a client pages by.
PAGE = """
query Page($first: Int, $after: String, $last: Int, $before: String,
           $filter: TaskFilter, $orderBy: TaskOrder) {
  tasks(first: $first, after: $after, last: $last, before: $before,
        filter: $filter, orderBy: $orderBy) {
    totalCount
    edges { cursor node { id } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


def task_rows(count: int, *, seed: int) -> list[tuple[str, str, bool, datetime | None, Any, Any]]:
    """Tasks with many ties in every sort field, so the id tie-breaker is exercised."""
    rng = random.Random(seed)
    rows = []
    for n in range(count):
        due = None if n % 4 == 0 else BASE + timedelta(days=rng.randrange(30))
        created = BASE + timedelta(hours=rng.randrange(40))
        rows.append(
            (
                f"task{rng.randrange(50):03d}",
                f"about {n}",
                n % 3 == 0,
                due,
                created,
                created + timedelta(minutes=rng.randrange(20)),
            )
        )
    return rows


def expected_ids(rows: list[Any], ids: list[int], field: str, direction: str) -> list[int]:
    """The order the API promises: by field, then id; tasks without a due date last."""
    column = {"TITLE": 0, "DUE_DATE": 3, "CREATED_AT": 4, "UPDATED_AT": 5}[field]
    descending = direction == "DESC"
    keyed = [(row[column], task_id) for row, task_id in zip(rows, ids, strict=True)]
    present = sorted((k for k in keyed if k[0] is not None), reverse=descending)
    missing = sorted((k for k in keyed if k[0] is None), key=lambda k: k[1], reverse=descending)
    return [task_id for _, task_id in present + missing]
