"""The extension runner (schema/hooks.py) runs hooks as Strawberry's own runner does.

Each test drives the same extensions through both runners and compares what the hooks saw.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner

from schema.build import build_schema
from schema.hooks import CachedHooksRunner

STAGES = ("operation", "parsing", "validation", "executing")


class Noting(SchemaExtension):
    """Notes entering and leaving each stage, and any exception thrown into it."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def _note(self, stage: str) -> Iterator[None]:
        self.log.append(f"{self.name} enters {stage}")
        try:
            yield
        except Exception as error:
            self.log.append(f"{self.name} sees {error}")
            raise
        self.log.append(f"{self.name} leaves {stage}")

    def on_operation(self) -> Iterator[None]:
        yield from self._note("operation")

    def on_parse(self) -> Iterator[None]:
        yield from self._note("parsing")

    def on_execute(self) -> Iterator[None]:
        yield from self._note("executing")


class NotingSwallower(Noting):
    """Notes, and catches what its execution stage raises: Strawberry raises it all the same."""

    def on_execute(self) -> Iterator[None]:
        self.log.append(f"{self.name} enters executing")
        try:
            yield
        except Exception as error:
            self.log.append(f"{self.name} swallowed {error}")


class NotingLeavingBadly(Noting):
    """Notes, and raises its own error when it leaves the execution stage."""

    def on_execute(self) -> Iterator[None]:
        yield from self._note("executing")
        raise ValueError(f"{self.name} left badly")


class AsyncNoting(SchemaExtension):
    """A hook only Strawberry's stage runs (an async generator)."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def on_execute(self) -> AsyncIterator[None]:
        self.log.append("async enters executing")
        yield
        self.log.append("async leaves executing")


class PlainNoting(SchemaExtension):
    """Another one: a plain method."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def on_validate(self) -> None:  # type: ignore[override]
        self.log.append("plain validates")


async def _drive(
    runner_type: type[SchemaExtensionsRunner],
    make: Any,
    failing: str | None = None,
) -> list[str]:
    """Runs the four stages nested as Strawberry nests them; `failing` raises in that stage."""
    log: list[str] = []
    runner = runner_type(execution_context=None, extensions=make(log))  # type: ignore[arg-type]

    async def stage(name: str) -> None:
        async with getattr(runner, name)():
            log.append(f"inside {name}")
            if name == failing:
                raise ValueError(f"failed in {name}")

    try:
        async with runner.operation():
            for name in STAGES[1:]:
                await stage(name)
            if failing == "operation":
                raise ValueError("failed in operation")
    except ValueError as error:
        log.append(f"raised {error}")
    return log


EXTENSION_SETS = {
    "generators": lambda log: [Noting("a", log), Noting("b", log)],
    "one that swallows": lambda log: [
        Noting("a", log),
        NotingSwallower("s", log),
        Noting("b", log),
    ],
    "an async hook": lambda log: [Noting("a", log), AsyncNoting(log), Noting("b", log)],
    "a plain hook": lambda log: [PlainNoting(log), Noting("a", log)],
    # One hook per stage: entered without an exit stack.
    "one alone": lambda log: [Noting("a", log)],
    "one that swallows, alone": lambda log: [NotingSwallower("a", log)],
    "one that fails leaving, alone": lambda log: [NotingLeavingBadly("a", log)],
    "two, one failing leaving": lambda log: [NotingLeavingBadly("a", log), Noting("b", log)],
    "none": lambda log: [],
}


@pytest.mark.parametrize("failing", [None, *STAGES])
@pytest.mark.parametrize("extensions", EXTENSION_SETS, ids=list(EXTENSION_SETS))
async def test_hooks_run_as_strawberrys_runner_runs_them(
    extensions: str, failing: str | None
) -> None:
    make = EXTENSION_SETS[extensions]
    ours = await _drive(CachedHooksRunner, make, failing)
    assert ours == await _drive(SchemaExtensionsRunner, make, failing)
    # Not vacuous: the hooks ran, and the failure reached the caller.
    assert ("a enters operation" in ours) is (extensions != "none")
    raised = [line for line in ours if line.startswith("raised")]
    assert bool(raised) is (failing is not None or "leaving" in extensions)


def test_the_schema_runs_its_extensions_through_the_cached_runner() -> None:
    schema = build_schema()
    runner = schema.create_extensions_runner(None, schema.get_extensions())  # type: ignore[arg-type]
    assert isinstance(runner, CachedHooksRunner)


class Counting(SchemaExtension):
    """Results of its own, given at once."""

    def get_results(self) -> dict[str, Any]:
        return {"count": 1, "shared": "counting"}


class AsyncCounting(SchemaExtension):
    """Results of its own, awaited."""

    async def get_results(self) -> dict[str, Any]:  # type: ignore[override]
        return {"later": 2, "shared": "async"}


class Context:
    def __init__(self) -> None:
        self.extensions_results = {"shared": "context", "context": 3}


@pytest.mark.parametrize(
    "kinds",
    [(), (Noting,), (Counting, Noting, AsyncCounting), (AsyncCounting, Counting)],
    ids=["none", "without results", "mixed", "async first"],
)
async def test_results_merge_as_strawberrys_runner_merges_them(kinds: tuple[type, ...]) -> None:
    def make() -> list[SchemaExtension]:
        return [kind("n", []) if kind is Noting else kind() for kind in kinds]

    ours = await CachedHooksRunner(None, make()).get_extensions_results(Context())  # type: ignore[arg-type]
    theirs = await SchemaExtensionsRunner(None, make()).get_extensions_results(Context())  # type: ignore[arg-type]
    assert ours == theirs
    assert ours["shared"] == "context"
    assert ("count" in ours) is (Counting in kinds)
