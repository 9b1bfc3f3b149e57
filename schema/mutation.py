"""Root Mutation: expected failures come back as userErrors, not as GraphQL errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated

import strawberry

from resolvers import tasks as operations
from resolvers.domain import IdempotencyKey
from resolvers.domain import Task as DomainTask
from resolvers.errors import (
    IdempotencyKeyReused,
    InvalidInput,
    MalformedIdempotencyKey,
    TaskNotFound,
    VersionConflict,
)
from schema.idempotency import KEY_FIELD, KeyArgument, mutation_key
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
# What a mutation does once its key is known (None: it has none).
Write = Callable[[IdempotencyKey | None], Awaitable[DomainTask]]


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
