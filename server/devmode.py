"""The embedded development setup: its token secret, and the banner `serve` prints."""

from __future__ import annotations

import os
import secrets
import shlex
import sys
import tempfile
from contextlib import suppress
from pathlib import Path


def development_secret(data_dir: Path) -> str:
    """The HS256 secret of the embedded development setup, created on first use."""
    path = data_dir / "dev-jwt-secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        # Written whole under a private name, then linked into place: link() fails when the
        # name exists, so of several workers starting at once exactly one publishes its secret,
        # and none ever reads a file that is still being written.
        fd, temporary = tempfile.mkstemp(dir=data_dir, prefix=".dev-jwt-secret.")
        try:
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(32))
            with suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    return path.read_text().strip()


def print_banner(*, base_url: str, data_dir: Path, user_id: str, token: str) -> None:
    """What a developer needs to try the API at once: a token, curl commands, the pages."""
    print(
        f"""
taskql development server (embedded PostgreSQL in {data_dir / "postgres"})

  Token for user '{user_id}' (valid 24 h; new one: {token_command(user_id)}):
    {token}

  REST:
    curl -s -X POST {base_url}/api/{user_id}/tasks -H "Authorization: Bearer {token}" \\
      -H "Content-Type: application/json" -d '{{"title": "Try taskql"}}'
    curl -s -H "Authorization: Bearer {token}" {base_url}/api/{user_id}/tasks

  GraphiQL: {base_url}/graphql   (the Authorization header is filled in for '{user_id}')
  REST docs: {base_url}/api/docs   (Swagger UI, authorised as '{user_id}' too)
""",
        flush=True,
    )


def token_command(user_id: str) -> str:
    """The command that prints a new development token, as pasted into a fresh shell: the
    console script beside this interpreter (`.venv/bin/taskql` in a checkout)."""
    script = Path(sys.executable).with_name("taskql")
    with suppress(ValueError):
        script = script.relative_to(Path.cwd())
    return f"{shlex.quote(str(script))} token {shlex.quote(user_id)}"
