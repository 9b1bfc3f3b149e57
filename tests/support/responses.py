"""Checks that a response body gives away nothing of the server's internals."""

from __future__ import annotations

INTERNALS = ("Traceback", 'File "', "asyncpg", "sqlalchemy", "SELECT ", "INSERT ", "UPDATE tasks")


def assert_no_internals(text: str) -> None:
    """No stack trace, driver name or SQL in a body sent to a client."""
    for marker in INTERNALS:
        assert marker not in text, f"{marker!r} leaked: {text[:300]}"
