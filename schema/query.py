"""Root Query: the viewer and their tasks; there is no user argument anywhere."""

from __future__ import annotations

from typing import TypeVar

import strawberry

from resolvers import tasks as operations
from resolvers.context import Context
from resolvers.domain import DEFAULT_ORDER, NO_FILTER
from resolvers.errors import TaskNotFound
from resolvers.pagination import cursor_page
from schema.connection import TaskConnection, TaskFilterInput, TaskOrderInput
from schema.types import Task, TaskCounts, Viewer, as_graphql, counts_as_graphql

Info = strawberry.Info[Context, None]
T = TypeVar("T")


def parse_task_id(raw: strawberry.ID) -> int:
    """A GraphQL ID as a task id; one that is not a decimal integer names no task."""
    text = str(raw)
    if not (text.isascii() and text.isdigit()):
        raise TaskNotFound(text)
    return int(text)


def _given(value: T | None) -> T | None:
    """An argument's value, None when the document left it out (UNSET)."""
    return None if value is strawberry.UNSET else value


@strawberry.type
class Query:
    @strawberry.field(description="Who the token says you are.")
    def viewer(self, info: Info) -> Viewer:
        return Viewer(id=strawberry.ID(info.context.viewer.user_id))

    @strawberry.field(description="One of your tasks; null when you have none with this id.")
    async def task(self, info: Info, id: strawberry.ID) -> Task | None:
        try:
            return as_graphql(await operations.get_task(info.context, task_id=parse_task_id(id)))
        except TaskNotFound:
            return None

    @strawberry.field(
        description="Your tasks, a page at a time: first/after walks forwards, last/before "
        "backwards. Oldest first unless orderBy says otherwise."
    )
    async def tasks(
        self,
        info: Info,
        # UNSET, not None: without a GraphQL default, graphql-core passes only the arguments
        # a document gives, and Strawberry converts each one it is passed on every call.
        first: int | None = strawberry.UNSET,
        after: str | None = strawberry.UNSET,
        last: int | None = strawberry.UNSET,
        before: str | None = strawberry.UNSET,
        filter: TaskFilterInput | None = strawberry.UNSET,
        order_by: TaskOrderInput | None = strawberry.UNSET,
    ) -> TaskConnection:
        order_by, filter = _given(order_by), _given(filter)
        order = DEFAULT_ORDER if order_by is None else order_by.as_order()
        page = await operations.list_tasks(
            info.context,
            filters=NO_FILTER if filter is None else filter.as_filter(),
            order=order,
            page=cursor_page(
                order=order,
                first=_given(first),
                after=_given(after),
                last=_given(last),
                before=_given(before),
            ),
        )
        return TaskConnection.of(page)

    @strawberry.field(
        description="How many of your tasks match the filter, in all and in each state, "
        'counted in one query; select it beside tasks for a list and its "N items left".'
    )
    async def task_counts(self, info: Info, filter: TaskFilterInput | None = None) -> TaskCounts:
        filters = NO_FILTER if filter is None else filter.as_filter()
        return counts_as_graphql(
            await operations.count_tasks_by_state(info.context, filters=filters)
        )
