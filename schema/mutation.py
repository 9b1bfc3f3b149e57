"""Root Mutation: expected failures come back as userErrors, not as GraphQL errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated

import strawberry

from resolvers import tasks as operations
from resolvers.domain import IdempotencyKey
from resolvers.domain import Task as DomainTask
from resolvers.errors import (
    FieldError,
    IdempotencyKeyReused,
    InvalidInput,
    MalformedIdempotencyKey,
    TaskNotFound,
    VersionConflict,
)
from schema.connection import TaskFilterInput
from schema.idempotency import KEY_FIELD, KeyArgument, mutation_key
from schema.query import Info, parse_task_id
from schema.types import (
    AllTasks,
    CreateTaskInput,
    DeleteTaskPayload,
    DeleteTasksPayload,
    SetTasksCompletionPayload,
    TaskPayload,
    UpdateTaskInput,
    UserError,
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
# What a mutation does once its key is known (None: it has none).
Write = Callable[[IdempotencyKey | None], Awaitable[DomainTask]]

BulkFilter = Annotated[
    TaskFilterInput | None,
    strawberry.argument(description="The tasks to change: those matching every condition."),
]
EveryTask = Annotated[
    AllTasks | None,
    strawberry.argument(
        name="all",
        description="ALL_TASKS: every one of your tasks, without a filter; an empty filter "
        "alone is refused.",
    ),
]
_BULK = (
    "Atomic: all the matching tasks change or none do; more than BULK_MAX_TASKS matching "
    "is refused (TOO_MANY_TASKS) and changes nothing."
)


async def _task_payload(
    info: Info, key_argument: str | None, arguments: Mapping[str, object], write: Write
) -> TaskPayload:
    try:
        task = await write(mutation_key(info, key_argument, arguments))
    except VersionConflict as conflict:
        # The client gets the task as it is now, to merge or retry.
        return TaskPayload(task=as_graphql(conflict.task), user_errors=user_errors(conflict))
    except (InvalidInput, TaskNotFound) as error:
        return TaskPayload(task=None, user_errors=user_errors(error))
    except (MalformedIdempotencyKey, IdempotencyKeyReused) as error:
        key_field = None if key_argument is None else KEY_FIELD
        return TaskPayload(task=None, user_errors=user_errors(error, key_field=key_field))
    return TaskPayload(task=as_graphql(task), user_errors=[], replayed=info.context.replayed)


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_task(
        self, info: Info, input: CreateTaskInput, idempotency_key: KeyArgument = None
    ) -> TaskPayload:
        data = provided_fields(input)

        async def create(key: IdempotencyKey | None) -> DomainTask:
            return await operations.create_task(info.context, data=data, idempotency=key)

        return await _task_payload(info, idempotency_key, {"input": data}, create)

    @strawberry.mutation(description="Set the fields given in input; others keep their value.")
    async def update_task(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateTaskInput,
        expected_version: ExpectedVersion = None,
        idempotency_key: KeyArgument = None,
    ) -> TaskPayload:
        data = provided_fields(input)

        async def update(key: IdempotencyKey | None) -> DomainTask:
            return await operations.update_task(
                info.context,
                task_id=parse_task_id(id),
                data=data,
                expected_version=expected_version,
                idempotency=key,
            )

        arguments = {"id": id, "input": data, "expectedVersion": expected_version}
        return await _task_payload(info, idempotency_key, arguments, update)

    @strawberry.mutation
    async def toggle_task_completion(
        self,
        info: Info,
        id: strawberry.ID,
        expected_version: ExpectedVersion = None,
        idempotency_key: KeyArgument = None,
    ) -> TaskPayload:
        async def toggle(key: IdempotencyKey | None) -> DomainTask:
            return await operations.toggle_task(
                info.context,
                task_id=parse_task_id(id),
                expected_version=expected_version,
                idempotency=key,
            )

        arguments = {"id": id, "expectedVersion": expected_version}
        return await _task_payload(info, idempotency_key, arguments, toggle)

    @strawberry.mutation
    async def delete_task(
        self,
        info: Info,
        id: strawberry.ID,
        expected_version: ExpectedVersion = None,
        idempotency_key: KeyArgument = None,
    ) -> DeleteTaskPayload:
        try:
            arguments = {"id": id, "expectedVersion": expected_version}
            key = mutation_key(info, idempotency_key, arguments)
            await operations.delete_task(
                info.context,
                task_id=parse_task_id(id),
                expected_version=expected_version,
                idempotency=key,
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
        except (MalformedIdempotencyKey, IdempotencyKeyReused) as error:
            key_field = None if idempotency_key is None else KEY_FIELD
            return DeleteTaskPayload(
                deleted_task_id=None,
                task=None,
                user_errors=user_errors(error, key_field=key_field),
            )
        return DeleteTaskPayload(
            deleted_task_id=id, task=None, user_errors=[], replayed=info.context.replayed
        )

    @strawberry.mutation(
        description="Set completion on every task the filter matches (or all of them). " + _BULK
    )
    async def set_tasks_completion(
        self,
        info: Info,
        completed: bool,
        filter: BulkFilter = None,
        all_tasks: EveryTask = None,
    ) -> SetTasksCompletionPayload:
        try:
            tasks = await operations.set_tasks_completion(
                info.context,
                filters=None if filter is None else filter.as_filter(),
                all_tasks=all_tasks is AllTasks.ALL_TASKS,
                completed=completed,
            )
        except InvalidInput as error:
            return SetTasksCompletionPayload(count=0, tasks=[], user_errors=_bulk_errors(error))
        return SetTasksCompletionPayload(
            count=len(tasks), tasks=[as_graphql(task) for task in tasks], user_errors=[]
        )

    @strawberry.mutation(description="Delete every task the filter matches (or all). " + _BULK)
    async def delete_tasks(
        self, info: Info, filter: BulkFilter = None, all_tasks: EveryTask = None
    ) -> DeleteTasksPayload:
        try:
            deleted = await operations.delete_tasks(
                info.context,
                filters=None if filter is None else filter.as_filter(),
                all_tasks=all_tasks is AllTasks.ALL_TASKS,
            )
        except InvalidInput as error:
            return DeleteTasksPayload(count=0, deleted_task_ids=[], user_errors=_bulk_errors(error))
        return DeleteTasksPayload(
            count=len(deleted),
            deleted_task_ids=[strawberry.ID(str(task_id)) for task_id in deleted],
            user_errors=[],
        )


def _bulk_errors(error: InvalidInput) -> list[UserError]:
    """A bulk change's refusals: the filter's own fields under `filter`, the rest by name."""
    return [
        UserError(field=_bulk_error_field(each), message=each.message, code=each.kind.upper())
        for each in error.errors
    ]


def _bulk_error_field(error: FieldError) -> list[str] | None:
    if error.field == "":
        return None
    if error.field in ("filter", "all"):
        return [error.field]
    return user_errors(InvalidInput([error]), input_name="filter")[0].field
