"""The project's directory, and `python main.py ...` run there with an environment we choose."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]


def cli_environment(**variables: str) -> dict[str, str]:
    """This process's environment without any taskql configuration, plus `variables`."""
    prefixes = ("DATABASE_", "TEST_DATABASE_", "JWT_", "DB_", "DATA_DIR", "LOG_LEVEL")
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return {**inherited, **variables}


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """`python main.py <args>` in the project directory: exit status, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "main.py",
        *args,
        cwd=PROJECT_DIR,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()
