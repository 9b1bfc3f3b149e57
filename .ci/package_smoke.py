"""Build the wheel and run it as an operator would, with nothing of the checkout at hand.

For each way of installing it (the runtime lock file plus the wheel; the wheel alone through
pip's resolver; the declared lower bounds of every dependency), into a clean virtual
environment in a temporary directory, and from a working directory outside the checkout:
`taskql migrate` on a throwaway database, `taskql serve`, /readyz, one authenticated REST
request (create a task) and one GraphQL request (list it) with a token from `taskql token`,
then SIGTERM and the database dropped. Any failed step stops the run with a non-zero exit.

    .venv/bin/python .ci/package_smoke.py [--only lock|resolver|lowest ...]

The throwaway databases live on TEST_DATABASE_URL's server (default: the local one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
from alembic.script import ScriptDirectory

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
USER_ID = "smoke-user"
JWT_SECRET = "package-smoke-secret-that-is-long-enough-for-hs256"
# Variables that would configure taskql, or point Python at the checkout, in the child
# processes: the operator's shell has none of them.
_NOT_INHERITED = ("DATABASE_", "TEST_DATABASE_", "JWT_", "DB_", "DATA_DIR", "PYTHON", "VIRTUAL_ENV")
STARTED = time.monotonic()


class SmokeFailure(Exception):
    """A step did not do what an operator would expect; the message says which and why."""


def step(message: str) -> None:
    print(f"[package-smoke {time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


def run(
    args: Sequence[str | Path], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> str:
    """Runs a command to completion; its stdout, or SmokeFailure with its output."""
    command = [str(arg) for arg in args]
    try:
        done = subprocess.run(  # noqa: S603 (our own commands, no shell)
            command,
            cwd=cwd,
            env=env or dict(os.environ),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise SmokeFailure(f"{' '.join(command)} did not finish in {timeout:.0f} s") from error
    step(f"  {Path(command[0]).name} {' '.join(command[1:4])} ...: done")
    if done.returncode != 0:
        raise SmokeFailure(
            f"{' '.join(command)} exited {done.returncode}\n"
            f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
    return done.stdout


def operator_environment(venv: Path, **variables: str) -> dict[str, str]:
    """A fresh shell's environment: no taskql settings, no checkout venv on PATH."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(_NOT_INHERITED)}
    checkout_bin = str(ROOT / ".venv" / "bin")
    path = [p for p in inherited.get("PATH", "").split(os.pathsep) if p and p != checkout_bin]
    inherited["PATH"] = os.pathsep.join([str(venv / "bin"), *path])
    return {**inherited, **variables}


def build_wheel(out: Path) -> Path:
    """The wheel, built from the sdist as a release would be (so the sdist is tested too), of
    a copy of the files git knows: leftovers in the checkout (an old *.egg-info/SOURCES.txt,
    build/) would otherwise slip into the package and hide what it really lacks."""
    source = out.parent / "source"
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT)
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    run([sys.executable, "-m", "build", "--outdir", out, source], source)
    [wheel] = out.glob("taskql-*.whl")
    check_wheel_contents(wheel)
    return wheel


def check_wheel_contents(wheel: Path) -> None:
    """Migrations and their template ship; the checkout's tests and tools do not."""
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = ROOT / "db" / "migrations"
    needed = {"main.py", "db/migrations/script.py.mako"} | {
        path.relative_to(ROOT).as_posix() for path in migrations.rglob("*.py")
    }
    missing = sorted(needed - names)
    if missing:
        raise SmokeFailure(f"the wheel lacks {missing}")
    stray = sorted(n for n in names if n.split("/")[0] in {"tests", "bench", "examples", "docs"})
    if stray:
        raise SmokeFailure(f"the wheel carries files of the checkout only: {stray[:5]}")


def make_venv(path: Path) -> None:
    """`python3 -m venv`, as the operator would (pip included)."""
    run([sys.executable, "-m", "venv", path], cwd=path.parent)


def install_from_lock(venv: Path, wheel: Path) -> None:
    """The documented production install: the pinned set, hash-checked, then the wheel."""
    make_venv(venv)
    pip: list[str | Path] = [venv / "bin" / "python", "-m", "pip", "install", "--quiet"]
    env = operator_environment(venv)
    run([*pip, "--require-hashes", "-r", ROOT / "requirements.lock"], cwd=venv, env=env)
    run([*pip, "--no-deps", wheel], cwd=venv, env=env)
    # --no-deps checks nothing: a lock file missing a declared dependency shows here.
    run([venv / "bin" / "python", "-m", "pip", "check"], cwd=venv, env=env)


def install_with_resolver(venv: Path, wheel: Path) -> None:
    """`pip install taskql.whl`: the newest releases the declared ranges allow."""
    make_venv(venv)
    env = operator_environment(venv)
    run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel], cwd=venv, env=env)


def install_lowest(venv: Path, wheel: Path) -> None:
    """Every runtime dependency at the lowest release its declared range allows (installed by
    uv, which is faster than pip here and resolves the same ranges)."""
    pins = venv / "lowest.txt"
    uv: list[str | Path] = [ROOT / ".venv" / "bin" / "uv", "pip"]
    python: list[str | Path] = ["--python", venv / "bin" / "python"]
    env = operator_environment(venv)
    run([*uv[:-1], "venv", "--quiet", "--python", sys.executable, venv], cwd=ROOT, env=env)
    compile_lowest = [*uv, "compile", "--quiet", ROOT / "pyproject.toml", "-o", pins]
    compile_lowest += ["--resolution", "lowest-direct", "--python-version", "3.11"]
    run(compile_lowest, cwd=venv, env=env)
    run([*uv, "install", "--quiet", *python, "-r", pins], cwd=venv, env=env)
    run([*uv, "install", "--quiet", *python, "--no-deps", wheel], cwd=venv, env=env)
    run([*uv, "check", *python], cwd=venv, env=env)
    direct = {re.split(r"[^A-Za-z0-9._-]", line, maxsplit=1)[0] for line in declared_dependencies()}
    chosen = [line for line in pins.read_text().splitlines() if line.split("==")[0] in direct]
    step(f"  lowest: {', '.join(chosen)}")


def declared_dependencies() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        dependencies: list[str] = tomllib.load(file)["project"]["dependencies"]
    return dependencies


INSTALLS: dict[str, Callable[[Path, Path], None]] = {
    "lock": install_from_lock,
    "resolver": install_with_resolver,
    "lowest": install_lowest,
}


@contextmanager
def throwaway_database(name: str) -> Iterator[str]:
    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(ADMIN_URL)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield urlsplit(ADMIN_URL)._replace(path=f"/{name}").geturl()
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def operate(venv: Path, workdir: Path, database_url: str) -> None:
    """migrate, token, serve, REST, GraphQL, SIGTERM: each as an operator types it."""
    taskql = venv / "bin" / "taskql"
    env = operator_environment(venv, DATABASE_URL=database_url, JWT_SECRET=JWT_SECRET)

    origin = run(
        [venv / "bin" / "python", "-c", "import main; print(main.__file__)"], cwd=workdir, env=env
    )
    if not Path(origin.strip()).is_relative_to(venv):
        raise SmokeFailure(f"`import main` found {origin.strip()}, not the installed package")

    head = ScriptDirectory(str(ROOT / "db" / "migrations")).get_current_head()
    migrated = run([taskql, "migrate"], cwd=workdir, env=env, timeout=120).strip()
    if migrated != f"database at revision {head}":
        raise SmokeFailure(f"`taskql migrate` said {migrated!r}, expected revision {head}")
    step(f"  taskql migrate: {migrated}")

    token = run([taskql, "token", USER_ID], cwd=workdir, env=env, timeout=60).strip()
    if token.count(".") != 2:
        raise SmokeFailure(f"`taskql token` printed {token!r}, not a JWT")

    port = free_port()
    log_path = workdir / "serve.log"
    serve_env = {**env, "HOST": "127.0.0.1", "PORT": str(port), "WORKERS": "1"}
    with log_path.open("w") as log:
        server = subprocess.Popen(  # noqa: S603
            [str(taskql), "serve"], cwd=workdir, env=serve_env, stdout=log, stderr=log
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(server, base, log_path)
        step(f"  taskql serve (pid {server.pid}) ready on {base}")
        exercise(base, token)
    except SmokeFailure as failure:
        raise SmokeFailure(f"{failure}\n--- serve log\n{log_path.read_text()[-4000:]}") from None
    finally:
        stop(server, log_path)


def wait_ready(server: subprocess.Popen[bytes], base: str, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SmokeFailure(f"`taskql serve` exited {server.returncode} before it was ready")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SmokeFailure("`taskql serve` was not ready within 60 s")


def exercise(base: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
        created = client.post(f"/api/{USER_ID}/tasks", json={"title": "Smoke-test the wheel"})
        if created.status_code != 201 or created.json().get("title") != "Smoke-test the wheel":
            raise SmokeFailure(f"REST create: {created.status_code} {created.text}")
        task_id = created.json()["id"]
        step(f"  REST POST /api/{USER_ID}/tasks: 201, task {task_id}")

        listed = client.post(
            "/graphql", json={"query": "{ tasks(first: 10) { nodes { id title } } }"}
        )
        expected = {
            "data": {"tasks": {"nodes": [{"id": str(task_id), "title": "Smoke-test the wheel"}]}}
        }
        if listed.status_code != 200 or listed.json() != expected:
            raise SmokeFailure(f"GraphQL list: {listed.status_code} {listed.text}")
        step(f"  GraphQL tasks: 200, {json.dumps(listed.json()['data'])}")


def stop(server: subprocess.Popen[bytes], log_path: Path) -> None:
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)
    try:
        status = server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        raise SmokeFailure("`taskql serve` ignored SIGTERM for 20 s; killed") from None
    # uvicorn re-raises the signal once it has shut down, so death by SIGTERM is a clean stop
    # (systemd counts it as one too).
    log = log_path.read_text()
    if status not in (0, -signal.SIGTERM) or "Application shutdown complete" not in log:
        raise SmokeFailure(f"`taskql serve` did not stop cleanly on SIGTERM ({status})\n{log}")
    step(f"  taskql serve stopped by SIGTERM ({status})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(INSTALLS), default=list(INSTALLS))
    args = parser.parse_args()
    try:
        with tempfile.TemporaryDirectory(prefix="taskql-smoke-") as temporary:
            scratch = Path(temporary)
            if scratch.resolve().is_relative_to(ROOT):
                raise SmokeFailure(f"{scratch} is inside the checkout; set TMPDIR elsewhere")
            step("building the sdist and the wheel")
            wheel = build_wheel(scratch / "dist")
            step(f"built {wheel.name}")
            for name in args.only:
                step(f"{name}: installing into a clean venv")
                venv = scratch / f"venv-{name}"
                INSTALLS[name](venv, wheel)
                workdir = scratch / f"work-{name}"
                workdir.mkdir()
                with throwaway_database(f"taskql_smoke_{name}_{os.getpid()}") as url:
                    operate(venv, workdir, url)
                step(f"{name}: passed")
    except SmokeFailure as failure:
        print(f"package smoke FAILED: {failure}", file=sys.stderr)
        return 1
    step(f"package smoke passed ({', '.join(args.only)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
