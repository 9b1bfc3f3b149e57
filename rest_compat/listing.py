"""Query parameters of GET /api/{user_id}/tasks: filters, sort and offset paging."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, cast

from resolvers.domain import DEFAULT_ORDER, SortField, TaskFilter, TaskOrder
from resolvers.errors import FieldError, InvalidInput
from resolvers.pagination import MAX_PAGE_SIZE, PageRequest
from resolvers.validation import validate_task_filter

# PostgreSQL's OFFSET is a bigint; a larger one could only ever skip every task anyway.
MAX_OFFSET = 2**63 - 1

SORT_FIELDS: tuple[SortField, ...] = ("created_at", "due_date", "title", "updated_at")
SORTS = tuple(prefix + field for field in SORT_FIELDS for prefix in ("", "-"))

# Domain names of filter fields that REST spells differently.
_PARAMETER_NAMES = {"search": "q"}
_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}


@dataclass(frozen=True, slots=True)
class TaskListQuery:
    filters: TaskFilter
    order: TaskOrder
    page: PageRequest


class _Invalid(Exception):
    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


@dataclass(frozen=True, slots=True)
class BulkQuery:
    """Which tasks a bulk change acts on: those matching `filters`, or all of them."""

    filters: TaskFilter | None
    all_tasks: bool


# The listing's filter parameters, the only ones (with `all`) a bulk change takes.
FILTER_PARAMETERS = ("completed", "overdue", "due_before", "due_after", "q")
BULK_PARAMETERS = (*FILTER_PARAMETERS, "all")


class _Reader:
    """Reads query parameters, collecting every error to report them all at once."""

    def __init__(self, params: Mapping[str, str]) -> None:
        self.params = params
        self.errors: list[FieldError] = []

    def parsed(self, name: str, parse: Callable[[str], Any]) -> Any:
        raw = self.params.get(name)
        if raw is None:
            return None
        try:
            return parse(raw)
        except _Invalid as invalid:
            self.errors.append(FieldError(name, invalid.message, invalid.kind, location="query"))
            return None

    def filters(self) -> TaskFilter | None:
        completed = self.parsed("completed", _boolean)
        overdue = self.parsed("overdue", _boolean)
        try:
            return validate_task_filter(
                completed=completed,
                due_before=self.params.get("due_before"),
                due_after=self.params.get("due_after"),
                overdue=overdue,
                search=self.params.get("q"),
            )
        except InvalidInput as invalid:
            self.errors.extend(
                replace(error, field=_PARAMETER_NAMES.get(error.field, error.field))
                for error in invalid.errors
            )
            return None

    def check(self) -> None:
        if self.errors:
            raise InvalidInput(self.errors)


def parse_list_query(params: Mapping[str, str]) -> TaskListQuery:
    """The listing the query string asks for; 422 with every bad parameter, as FastAPI does."""
    read = _Reader(params)
    filters = read.filters()
    order = read.parsed("sort", _sort) or DEFAULT_ORDER
    limit = read.parsed("limit", lambda raw: _integer(raw, minimum=0, maximum=MAX_PAGE_SIZE))
    offset = read.parsed("offset", lambda raw: _integer(raw, minimum=0, maximum=MAX_OFFSET)) or 0
    read.check()
    assert filters is not None
    return TaskListQuery(filters=filters, order=order, page=PageRequest(limit=limit, offset=offset))


def parse_bulk_query(params: Mapping[str, str]) -> BulkQuery:
    """The tasks a bulk change names. Stricter than the listing: a parameter it does not take
    (sort, limit, a misspelt filter) is refused rather than ignored, since ignoring it would
    change more tasks than the client meant."""
    read = _Reader(params)
    for name in params:
        if name not in BULK_PARAMETERS:
            message = f"A bulk change takes only {', '.join(BULK_PARAMETERS)}"
            read.errors.append(FieldError(name, message, "extra_forbidden", location="query"))
    filters = read.filters()
    all_tasks = read.parsed("all", _boolean)
    read.check()
    given = any(name in params for name in FILTER_PARAMETERS)
    return BulkQuery(filters=filters if given else None, all_tasks=bool(all_tasks))


def _boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _Invalid("Input should be a valid boolean, unable to interpret input", "bool_parsing")


def _integer(raw: str, *, minimum: int, maximum: int | None = None) -> int:
    text = raw.strip()
    if not (text.isascii() and text.lstrip("-").isdigit()):
        raise _Invalid(
            "Input should be a valid integer, unable to parse string as an integer", "int_parsing"
        )
    value = int(text)
    if value < minimum:
        raise _Invalid(f"Input should be greater than or equal to {minimum}", "greater_than_equal")
    if maximum is not None and value > maximum:
        raise _Invalid(f"Input should be less than or equal to {maximum}", "less_than_equal")
    return value


def _sort(raw: str) -> TaskOrder:
    if raw not in SORTS:
        choices = ", ".join(f"'{sort}'" for sort in SORTS[:-1])
        raise _Invalid(f"Input should be {choices} or '{SORTS[-1]}'", "literal_error")
    return TaskOrder(field=cast(SortField, raw.removeprefix("-")), descending=raw.startswith("-"))


# What a listing without a query string asks for, the commonest request: parsing an empty
# query string took 6-8% of such a request's CPU (bench/README.md, "REST list").
LIST_WITHOUT_PARAMETERS = parse_list_query({})
