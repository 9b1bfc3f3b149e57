"""Root Query: the viewer and their tasks; there is no user argument anywhere."""

from __future__ import annotations

import strawberry

from resolvers import tasks as operations
from resolvers.context import Context
from resolvers.errors import TaskNotFound
from resolvers.pagination import TaskPage, encode_cursor
from schema.types import PageInfo, Task, TaskEdge, Viewer, as_graphql

Info = strawberry.Info[Context, None]


def parse_task_id(raw: strawberry.ID) -> int:
    """A GraphQL ID as a task id; one that is not a decimal integer names no task."""
    text = str(raw)
    if not (text.isascii() and text.isdigit()):
        raise TaskNotFound(text)
    return int(text)


@strawberry.type(description="A page of tasks, in the Relay connection shape.")
class TaskConnection:
    page: strawberry.Private[TaskPage]

    @strawberry.field
    def nodes(self) -> list[Task]:
        return [as_graphql(task) for task in self.page.tasks]

    @strawberry.field
    def edges(self) -> list[TaskEdge]:
        return [TaskEdge(cursor=encode_cursor(t), node=as_graphql(t)) for t in self.page.tasks]

    @strawberry.field
    def page_info(self) -> PageInfo:
        tasks = self.page.tasks
        return PageInfo(
            has_next_page=self.page.has_next_page,
            has_previous_page=self.page.has_previous_page,
            start_cursor=encode_cursor(tasks[0]) if tasks else None,
            end_cursor=encode_cursor(tasks[-1]) if tasks else None,
        )

    @strawberry.field(description="All of the viewer's tasks, regardless of paging.")
    async def total_count(self, info: Info) -> int:
        return await operations.count_tasks(info.context)


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

    @strawberry.field(description="Your tasks, oldest first.")
    async def tasks(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> TaskConnection:
        page = await operations.list_tasks_page(info.context, first=first, after=after)
        return TaskConnection(page=page)
