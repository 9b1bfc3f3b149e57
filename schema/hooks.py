"""Strawberry's schema-extension runner, with each extension class's hooks looked up once.

For every stage of every request (operation, parsing, validation, execution) Strawberry looks
up each extension's hook anew: a getattr, an `inspect` test and a `contextlib` decorator made
for the instance. With the schema's four extensions that is about a third of the 30 µs the
extension machinery costs a request (bench/README.md, "One GraphQL executor"). Here the hook
is found and decorated once per extension class and stage. A stage whose hooks are all
generator functions (every hook of ours is) is entered through one `contextlib.ExitStack`,
which runs them exactly as Strawberry's stage does: entered in the extensions' order, left in
reverse, an exception thrown into each, and never suppressed (Strawberry discards what its
stack returns). A stage with one such hook (each of ours has one or none) enters it without
the exit stack, whose deque an open subscription would keep for its life; a stage without
hooks is a shared empty context. A stage with any other kind of hook (an async generator, a
plain function) is Strawberry's own.

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

Hook = Callable[[SchemaExtension], contextlib.AbstractContextManager[None]]
# By extension class and hook name: the hook made a context manager; None when the class does
# not override the hook; False when it is a kind of hook only Strawberry's stage runs.
_HOOKS: dict[tuple[type[SchemaExtension], str], Hook | bool | None] = {}


def _hook(extension_type: type[SchemaExtension], name: str) -> Hook | bool | None:
    key = (extension_type, name)
    if key not in _HOOKS:
        function = getattr(extension_type, name)
        if function is getattr(SchemaExtension, name):
            _HOOKS[key] = None
        elif inspect.isgeneratorfunction(function):
            _HOOKS[key] = contextlib.contextmanager(function)
        else:
            _HOOKS[key] = False
    return _HOOKS[key]


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

    def operation(self) -> Any:
        return self._stage("on_operation") or super().operation()

    def parsing(self) -> Any:
        return self._stage("on_parse") or super().parsing()

    def validation(self) -> Any:
        return self._stage("on_validate") or super().validation()

    def executing(self) -> Any:
        return self._stage("on_execute") or super().executing()

    def _stage(self, name: str) -> _Stage | contextlib.nullcontext[None] | None:
        hooks = []
        for extension in self.extensions:
            hook = _hook(type(extension), name)
            if hook is False:
                return None
            if hook is not None:
                hooks.append((hook, extension))
        return _Stage(hooks) if hooks else _NO_HOOKS  # type: ignore[arg-type]


def _left(*_: object) -> None:
    """A stage not entered has nothing to leave."""


# `with` and `async with` both work on it, and it keeps no state: one serves every request.
_NO_HOOKS = contextlib.nullcontext()
