"""Strawberry's schema-extension runner, with each extension class's hooks looked up once.

For every stage of every request (operation, parsing, validation, execution) Strawberry looks
up each extension's hook anew: a getattr, an `inspect` test and a `contextlib` decorator made
for the instance. With the schema's four extensions that is about a third of the 30 µs the
extension machinery costs a request (bench/README.md, "One GraphQL executor"). Here the hooks
are found and decorated once per tuple of extension classes (a schema has one) and stage. A
stage whose hooks are all generator functions (every hook of ours is) is entered through one
`contextlib.ExitStack`, which runs them exactly as Strawberry's stage does: entered in the
extensions' order, left in reverse, an exception thrown into each, and never suppressed
(Strawberry discards what its stack returns). A stage with one such hook (each of ours has one
or none) enters it without the exit stack, whose deque an open subscription would keep for
its life; a stage without hooks is a shared empty context. A stage with any other kind of
hook (an async generator, a plain function) is Strawberry's own.

Collecting results skips extensions that do not override `get_results` (Strawberry's returns
an empty dict), which Strawberry calls and awaits for each of them per request.

What would let us delete it: Strawberry keeping its hook lookup per extension class.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any

from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.types import ExecutionContext
from strawberry.utils.await_maybe import await_maybe

Hook = Callable[[SchemaExtension], contextlib.AbstractContextManager[None]]
# By the extension classes of a runner and hook name: each overridden hook, made a context
# manager, with its extension's index; None when a hook is of a kind only Strawberry's stage
# runs. A schema has one tuple of classes.
_STAGES: dict[tuple[tuple[type[SchemaExtension], ...], str], list[tuple[Hook, int]] | None] = {}


def _stage_hooks(
    extension_types: tuple[type[SchemaExtension], ...], name: str
) -> list[tuple[Hook, int]] | None:
    key = (extension_types, name)
    if key not in _STAGES:
        found = [
            (_hook(extension_type, name), i) for i, extension_type in enumerate(extension_types)
        ]
        kept = [(hook, index) for hook, index in found if callable(hook)]
        _STAGES[key] = None if any(hook is False for hook, _ in found) else kept
    return _STAGES[key]


def _hook(extension_type: type[SchemaExtension], name: str) -> Hook | bool | None:
    """The class's hook made a context manager; None when the class does not override it;
    False when it is a kind of hook only Strawberry's stage runs."""
    function = getattr(extension_type, name)
    if function is getattr(SchemaExtension, name):
        return None
    if inspect.isgeneratorfunction(function):
        return contextlib.contextmanager(function)
    return False


class _Stage:
    """One stage's generator hooks, run as Strawberry's stage runs them."""

    __slots__ = ("_exit", "_hooks")

    def __init__(self, hooks: list[tuple[Hook, SchemaExtension]]) -> None:
        self._hooks = hooks
        self._exit: Callable[..., object] = _left

    def __enter__(self) -> None:
        if len(self._hooks) == 1:
            hook, extension = self._hooks[0]
            manager = hook(extension)
            manager.__enter__()
            self._exit = manager.__exit__
        else:
            stack = contextlib.ExitStack()
            for hook, extension in self._hooks:
                stack.enter_context(hook(extension))
            self._exit = stack.__exit__

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._exit(exc_type, exc_value, traceback)

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc_value, traceback)


class CachedHooksRunner(SchemaExtensionsRunner):
    """Strawberry's runner, whose stages find their hooks through the per-class cache."""

    def __init__(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension] | None = None
    ) -> None:
        super().__init__(execution_context, extensions)
        self._types = tuple(map(type, self.extensions))

    def operation(self) -> Any:
        return self._stage("on_operation") or super().operation()

    def parsing(self) -> Any:
        return self._stage("on_parse") or super().parsing()

    def validation(self) -> Any:
        return self._stage("on_validate") or super().validation()

    def executing(self) -> Any:
        return self._stage("on_execute") or super().executing()

    async def get_extensions_results(self, ctx: ExecutionContext) -> dict[str, Any]:
        """Strawberry's merge of every extension's results, its context's last."""
        data: dict[str, Any] = {}
        for extension in self.extensions:
            if type(extension).get_results is not SchemaExtension.get_results:
                data.update(await await_maybe(extension.get_results()))
        data.update(ctx.extensions_results)
        return data

    def _stage(self, name: str) -> _Stage | contextlib.nullcontext[None] | None:
        hooks = _stage_hooks(self._types, name)
        if hooks is None:
            return None
        if not hooks:
            return _NO_HOOKS
        extensions = self.extensions
        return _Stage([(hook, extensions[index]) for hook, index in hooks])


def _left(*_: object) -> None:
    """A stage not entered has nothing to leave."""


# `with` and `async with` both work on it, and it keeps no state: one serves every request.
_NO_HOOKS = contextlib.nullcontext()
