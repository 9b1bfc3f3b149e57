"""Root Mutation: expected failures come back as userErrors, not as GraphQL errors."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated

import strawberry

from resolvers import tasks as operations
from resolvers.domain import Task as DomainTask
from resolvers.errors import InvalidInput, TaskNotFound, VersionConflict
from schema.query import Info, parse_task_id
from schema.types import (
    CreateTaskInput,
    DeleteTaskPayload,
    TaskPayload,
    UpdateTaskInput,
    as_graphql,
    provided_fields,
    user_errors,
)

ExpectedVersion = Annotated[
    int | None,
    strawberry.argument(
        description="Fail with VERSION_CONFLICT unless the task is still at this version."
    ),
]


async def _task_payload(outcome: Awaitable[DomainTask]) -> TaskPayload:
    try:
        return TaskPayload(task=as_graphql(await outcome), user_errors=[])
    except VersionConflict as conflict:
        # The client gets the task as it is now, to merge or retry.
        return TaskPayload(task=as_graphql(conflict.task), user_errors=user_errors(conflict))
    except (InvalidInput, TaskNotFound) as error:
        return TaskPayload(task=None, user_errors=user_errors(error))


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_task(self, info: Info, input: CreateTaskInput) -> TaskPayload:
        return await _task_payload(
            operations.create_task(info.context, data=provided_fields(input))
        )

    @strawberry.mutation(description="Set the fields given in input; others keep their value.")
    async def update_task(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateTaskInput,
        expected_version: ExpectedVersion = None,
    ) -> TaskPayload:
        async def update() -> DomainTask:
            return await operations.update_task(
                info.context,
                task_id=parse_task_id(id),
                data=provided_fields(input),
                expected_version=expected_version,
            )

        return await _task_payload(update())

    @strawberry.mutation
    async def toggle_task_completion(
        self, info: Info, id: strawberry.ID, expected_version: ExpectedVersion = None
    ) -> TaskPayload:
        async def toggle() -> DomainTask:
            return await operations.toggle_task(
                info.context, task_id=parse_task_id(id), expected_version=expected_version
            )

        return await _task_payload(toggle())

    @strawberry.mutation
    async def delete_task(
        self, info: Info, id: strawberry.ID, expected_version: ExpectedVersion = None
    ) -> DeleteTaskPayload:
        try:
            await operations.delete_task(
                info.context, task_id=parse_task_id(id), expected_version=expected_version
            )
        except VersionConflict as conflict:
            # As for the other mutations: the task as it is now, to merge or retry.
            return DeleteTaskPayload(
                deleted_task_id=None,
                task=as_graphql(conflict.task),
                user_errors=user_errors(conflict),
            )
        except TaskNotFound as error:
            return DeleteTaskPayload(
                deleted_task_id=None, task=None, user_errors=user_errors(error)
            )
        return DeleteTaskPayload(deleted_task_id=id, task=None, user_errors=[])
