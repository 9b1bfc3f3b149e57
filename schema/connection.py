"""The tasks connection: filter and order inputs, and Relay pages with opaque cursors."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import cast

import strawberry

from resolvers import tasks as operations
from resolvers.context import Context
from resolvers.domain import Task as DomainTask
from resolvers.domain import TaskFilter, TaskOrder
from resolvers.pagination import TaskPage, encode_cursor
from resolvers.validation import validate_task_filter
from schema.types import Task, all_as_graphql, as_graphql

Info = strawberry.Info[Context, None]


@strawberry.enum
class TaskOrderField(Enum):
    CREATED_AT = "created_at"
    DUE_DATE = "due_date"
    TITLE = "title"
    UPDATED_AT = "updated_at"


@strawberry.enum
class OrderDirection(Enum):
    ASC = "asc"
    DESC = "desc"


@strawberry.input(
    name="TaskOrder",
    description="Sort order; ties are broken by id, and tasks without a due date come last.",
)
class TaskOrderInput:
    field: TaskOrderField
    direction: OrderDirection | None = OrderDirection.ASC

    def as_order(self) -> TaskOrder:
        return TaskOrder(field=self.field.value, descending=self.direction is OrderDirection.DESC)


@strawberry.input(name="TaskFilter", description="Conditions on tasks; all given ones must hold.")
class TaskFilterInput:
    completed: bool | None = None
    due_before: datetime | None = strawberry.field(
        default=None, description="Due strictly before this instant."
    )
    due_after: datetime | None = strawberry.field(
        default=None, description="Due strictly after this instant."
    )
    overdue: bool | None = strawberry.field(
        default=None, description="Due in the past and not completed."
    )
    search: str | None = strawberry.field(
        default=None,
        description="Case-insensitive substring of the title or the description.",
    )

    def as_filter(self) -> TaskFilter:
        return validate_task_filter(
            completed=self.completed,
            due_before=self.due_before,
            due_after=self.due_after,
            overdue=self.overdue,
            search=self.search,
        )


@strawberry.type
class TaskEdge:
    node: Task
    order: strawberry.Private[TaskOrder]

    @strawberry.field(description="Where this task sits; pass it as after or before.")
    def cursor(self) -> str:
        # `node` is the domain task itself (see as_graphql), typed as its GraphQL face.
        return encode_cursor(cast(DomainTask, self.node), self.order)


@strawberry.type
class PageInfo:
    page: strawberry.Private[TaskPage]

    @strawberry.field
    async def has_next_page(self, info: Info) -> bool:
        return await operations.page_has_next(info.context, page=self.page)

    @strawberry.field
    async def has_previous_page(self, info: Info) -> bool:
        return await operations.page_has_previous(info.context, page=self.page)

    @strawberry.field
    def start_cursor(self) -> str | None:
        tasks = self.page.tasks
        return encode_cursor(tasks[0], self.page.order) if tasks else None

    @strawberry.field
    def end_cursor(self) -> str | None:
        tasks = self.page.tasks
        return encode_cursor(tasks[-1], self.page.order) if tasks else None


@strawberry.type(description="A page of tasks, in the Relay connection shape.")
class TaskConnection:
    page: strawberry.Private[TaskPage]
    # Data rather than a resolver: the executor reads a field without a resolver of its own,
    # and its items' plain fields, in one loop (schema/execution.py).
    nodes: list[Task]

    @classmethod
    def of(cls, page: TaskPage) -> TaskConnection:
        return cls(page=page, nodes=all_as_graphql(page.tasks))

    @strawberry.field
    def edges(self) -> list[TaskEdge]:
        order = self.page.order
        return [TaskEdge(node=as_graphql(task), order=order) for task in self.page.tasks]

    @strawberry.field
    def page_info(self) -> PageInfo:
        return PageInfo(page=self.page)

    @strawberry.field(description="How many tasks match the filter, regardless of paging.")
    async def total_count(self, info: Info) -> int:
        return await operations.count_tasks(info.context, filters=self.page.filters)
