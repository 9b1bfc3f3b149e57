"""GraphQL object and input types for tasks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import cast

import strawberry

from resolvers.domain import Task as DomainTask
from resolvers.domain import TaskCounts as DomainTaskCounts
from resolvers.errors import (
    AppError,
    FieldError,
    IdempotencyKeyReused,
    InvalidInput,
    MalformedIdempotencyKey,
    VersionConflict,
)
from schema.inputs import built_in_one_step


@strawberry.type(description="Something to do.")
class Task:
    id: strawberry.ID
    title: str
    description: str
    completed: bool
    due_date: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int = strawberry.field(
        description="Bumped by every change; send it back as expectedVersion to avoid lost updates."
    )


def as_graphql(task: DomainTask) -> Task:
    """The domain task, served as the GraphQL Task.

    Strawberry's default resolvers read attributes by name and the domain object has every
    one of them, so no copy is made per task; `id` is an int that the ID scalar serialises.
    """
    return cast(Task, task)


def all_as_graphql(tasks: Iterable[DomainTask]) -> list[Task]:
    """The domain tasks, served as GraphQL Tasks: `as_graphql` for a page in one call (per
    task, it made 40 of the 480 Python calls of a 20-task list)."""
    return cast(list[Task], list(tasks))


@strawberry.type(description="The authenticated user, as identified by the token.")
class Viewer:
    id: strawberry.ID = strawberry.field(description="The token's `sub` claim.")


@strawberry.type(description="An error in the input, reported as data rather than as an error.")
class UserError:
    field: list[str] | None = strawberry.field(description="Path to the input field at fault.")
    message: str
    code: str


_REPLAYED = (
    "True when this is the stored outcome of an earlier mutation with the same idempotency "
    "key, returned instead of writing again."
)


@strawberry.type
class TaskPayload:
    task: Task | None
    user_errors: list[UserError]
    replayed: bool = strawberry.field(default=False, description=_REPLAYED)


@strawberry.type
class DeleteTaskPayload:
    deleted_task_id: strawberry.ID | None
    task: Task | None = strawberry.field(
        description="The task as it is now, when a VERSION_CONFLICT kept it from being deleted."
    )
    user_errors: list[UserError]
    replayed: bool = strawberry.field(default=False, description=_REPLAYED)


@strawberry.type
class SetTasksCompletionPayload:
    count: int = strawberry.field(description="How many tasks changed.")
    tasks: list[Task] = strawberry.field(
        description="The tasks that changed, as they are now, by id; those already in the "
        "asked state are left alone and not listed."
    )
    user_errors: list[UserError]


@strawberry.type
class DeleteTasksPayload:
    count: int = strawberry.field(description="How many tasks were deleted.")
    deleted_task_ids: list[strawberry.ID] = strawberry.field(description="In ascending order.")
    user_errors: list[UserError]


@strawberry.enum(description="Said to act on every one of your tasks, with no filter.")
class AllTasks(Enum):
    ALL_TASKS = "all_tasks"


@strawberry.type(description="How many tasks there are in all and in each state.")
class TaskCounts:
    all: int
    active: int = strawberry.field(description="Not completed; overdue ones included.")
    completed: int
    overdue: int = strawberry.field(description="Due in the past and not completed.")


def counts_as_graphql(counts: DomainTaskCounts) -> TaskCounts:
    """The domain counts as the GraphQL type, which reads the same attributes."""
    return cast(TaskCounts, counts)


@built_in_one_step
@strawberry.input
class CreateTaskInput:
    # Nullable in the schema so that a missing title reaches the shared validation and comes
    # back as a MISSING userError with REST's message, instead of a request error.
    title: str | None = strawberry.field(
        default=strawberry.UNSET, description="Required; reported in userErrors when missing."
    )
    description: str | None = strawberry.UNSET
    due_date: datetime | None = strawberry.UNSET
    completed: bool | None = strawberry.UNSET


@built_in_one_step
@strawberry.input(description="Fields left out keep their value; dueDate: null clears it.")
class UpdateTaskInput:
    title: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    due_date: datetime | None = strawberry.UNSET
    completed: bool | None = strawberry.UNSET


def provided_fields(data: CreateTaskInput | UpdateTaskInput) -> dict[str, object]:
    """The input's fields the client actually sent, by domain name, UNSET ones left out."""
    return {name: value for name, value in vars(data).items() if value is not strawberry.UNSET}


def user_errors(
    error: AppError, *, input_name: str = "input", key_field: list[str] | None = None
) -> list[UserError]:
    """Expected failures of a mutation, as `userErrors`; `key_field` is the field of an
    idempotency key's errors (None: the key came in a header)."""
    if isinstance(error, InvalidInput):
        return [_field_error(e, input_name) for e in error.errors]
    field: list[str] | None = ["id"]
    if isinstance(error, VersionConflict):
        field = ["expectedVersion"]
    elif isinstance(error, MalformedIdempotencyKey | IdempotencyKeyReused):
        field = key_field
    return [UserError(field=field, message=error.message, code=error.code)]


def _field_error(error: FieldError, input_name: str) -> UserError:
    return UserError(
        field=[input_name, _camel(error.field)], message=error.message, code=error.kind.upper()
    )


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
