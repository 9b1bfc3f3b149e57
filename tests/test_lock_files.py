"""The lock files agree with pyproject.toml and with each other (else: `make lock`)."""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.cli import PROJECT_DIR

ROOT = PROJECT_DIR
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", re.MULTILINE)


def pins(lock_file: str) -> dict[str, str]:
    text = (ROOT / lock_file).read_text()
    return {canonicalize_name(name): version for name, version in _PIN.findall(text)}


def declared(extra: str | None = None) -> list[Requirement]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file)["project"]
    lines = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return [Requirement(line) for line in lines]


def unmet(requirements: list[Requirement], pinned: dict[str, str]) -> list[str]:
    """Each requirement the pins leave out or pin outside its range."""
    problems = []
    for requirement in requirements:
        version = pinned.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement} is not pinned")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement} is pinned at {version}")
    return problems


@pytest.mark.parametrize(
    ("lock_file", "extras"),
    [("requirements.lock", []), ("requirements-dev.lock", ["dev"])],
)
def test_the_lock_pins_every_declared_dependency_within_its_range(
    lock_file: str, extras: list[str]
) -> None:
    requirements = declared() + [r for extra in extras for r in declared(extra)]
    problems = unmet(requirements, pins(lock_file))
    assert not problems, f"{lock_file} is stale, run `make lock`: {problems}"


def test_deployments_get_the_versions_the_tests_ran_with() -> None:
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    differing = {name: (v, dev.get(name)) for name, v in runtime.items() if dev.get(name) != v}
    assert not differing, f"requirements.lock differs from requirements-dev.lock: {differing}"


def test_a_stale_pin_is_noticed() -> None:
    # The check above must be able to fail: a range the pinned version is outside of.
    assert unmet([Requirement("starlette>=99")], {"starlette": "1.10.0"}) == [
        "starlette>=99 is pinned at 1.10.0"
    ]
    assert unmet([Requirement("httpx>=0.28")], {}) == ["httpx>=0.28 is not pinned"]
