"""Reading settings from the environment: declared variables, typed values, clear refusals."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Setting:
    """One environment variable: its default (None: unset) and what it does."""

    name: str
    default: str | None
    effect: str


class ConfigError(Exception):
    """The environment asks for something impossible; the message says how to fix it."""


class Environment:
    """The declared settings' values, read as the types they stand for.

    Every reader names the variable in its refusal, so a bad deployment fails at start with
    the fix in one line instead of misbehaving later.
    """

    def __init__(self, declared: Sequence[Setting], env: Mapping[str, str]) -> None:
        self._env = env
        # An empty value counts as unset, so `VAR=` in an env file falls back to the default.
        self._values = {s.name: env.get(s.name) or s.default for s in declared}

    def text(self, name: str) -> str | None:
        """The value, or the default; None when neither is set."""
        if name not in self._values:
            raise KeyError(f"{name} is not a declared setting")
        return self._values[name]

    def is_set_empty(self, name: str) -> bool:
        """Whether the variable is present but empty (for settings where that means "none")."""
        return self._env.get(name) == ""

    def integer(self, name: str, minimum: int, maximum: int | None = None) -> int:
        value: int = self._number(name, int)
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
            raise ConfigError(f"{name} must be {bounds}, got {value}")
        return value

    def seconds(self, name: str) -> float:
        value: float = self._number(name, float)
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(
                f"{name} must be a positive number of seconds, got {self.text(name)!r}"
            )
        return value

    def flag(self, name: str) -> bool | None:
        """true/false (and their usual spellings); None for `auto`."""
        raw = (self.text(name) or "").strip().lower()
        if raw in {"1", "true", "yes", "on"}:
            return True
        if raw in {"0", "false", "no", "off"}:
            return False
        if raw == "auto":
            return None
        raise ConfigError(f"{name} must be true or false, got {raw!r}")

    def choice(self, name: str, choices: Sequence[str]) -> str:
        value = (self.text(name) or "").strip().lower()
        if value not in choices:
            spelled = ", ".join(choices[:-1]) + f" or {choices[-1]}"
            raise ConfigError(f"{name} must be {spelled}, got {value!r}")
        return value

    def items(self, name: str) -> tuple[str, ...]:
        """A comma-separated list, blanks dropped."""
        return tuple(item.strip() for item in (self.text(name) or "").split(",") if item.strip())

    def path(self, name: str) -> Path | None:
        value = self.text(name)
        return Path(value).resolve() if value else None

    def _number(self, name: str, kind: type[int] | type[float]) -> Any:
        try:
            return kind(self.text(name) or "")
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {self.text(name)!r}") from None


def redacted(settings: object, secret_names: Sequence[str]) -> dict[str, Any]:
    """A settings dataclass as logged at start-up: secrets and URL passwords redacted."""

    def value_of(name: str, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: value_of(key, item) for key, item in value.items()}
        if name in secret_names and value is not None:
            return "<redacted>"
        if isinstance(value, str) and "://" in value:
            parts = urlsplit(value)
            if parts.password is not None:
                host = parts.netloc.rpartition("@")[2]
                return parts._replace(netloc=f"{parts.username}:<redacted>@{host}").geturl()
        if isinstance(value, Path):
            return str(value)
        return value

    assert is_dataclass(settings)
    assert not isinstance(settings, type)
    return {name: value_of(name, value) for name, value in asdict(settings).items()}
