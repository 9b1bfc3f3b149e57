"""`python main.py serve` as operators run it: several workers, real HTTP, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import jwt
import psutil
import pytest

from tests.support.cli import PROJECT_DIR
from tests.support.servers import free_port

pytestmark = pytest.mark.slow

START_SECONDS = 60.0
USER = "dev-user"
TOGGLES = 200


class Server:
    """A `main.py serve` process on the embedded default, with its data in a temp DATA_DIR."""

    def __init__(self, process: asyncio.subprocess.Process, data_dir: Path, port: int) -> None:
        self.process = process
        self.data_dir = data_dir
        self.base_url = f"http://127.0.0.1:{port}"
        self.log = data_dir / "serve.log"

    def token(self) -> str:
        secret = (self.data_dir / "dev-jwt-secret").read_text().strip()
        now = int(time.time())
        return jwt.encode({"sub": USER, "iat": now, "exp": now + 600}, secret, algorithm="HS256")

    def postmaster(self) -> tuple[int, str] | None:
        """The embedded server's PID and socket directory, None when it is not running."""
        try:
            lines = (self.data_dir / "postgres" / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return None
        return int(lines[0]), lines[4]

    async def wait_ready(self, http: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                pytest.fail(f"server exited early:\n{self.log.read_text()}")
            try:
                if (await http.get(f"{self.base_url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        pytest.fail(f"server not ready after {START_SECONDS}s:\n{self.log.read_text()}")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "TEST_DATABASE_URL", "JWT_SECRET", "JWT_JWKS_URL"}
    }
    env.update(DATA_DIR=str(data_dir), PORT=str(port), WORKERS="2", HOST="127.0.0.1")
    with (data_dir / "serve.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "main.py", "serve", cwd=PROJECT_DIR, env=env, stdout=log, stderr=log
        )
    running = Server(process, data_dir, port)
    try:
        yield running
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        postmaster = running.postmaster()
        if postmaster is not None:
            # The test failed before shutdown completed; do not leave the server behind.
            os.kill(postmaster[0], signal.SIGINT)


async def _lock_waiter(conn: asyncpg.Connection) -> None:
    """Return once some session waits for a lock (the request we hold up)."""
    for _ in range(int(START_SECONDS * 100)):
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        if await conn.fetchval(waiting):
            return
        await asyncio.sleep(0.01)
    pytest.fail("the request never reached the database")


async def _exits(pid: int) -> bool:
    """Whether the process is gone (or a zombie: it exited, its reaper did not ask yet) soon."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_sigterm_finishes_in_flight_requests_and_stops_the_embedded_database(
    server: Server,
) -> None:
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=30) as http:
        await server.wait_ready(http)
        headers = {"Authorization": f"Bearer {server.token()}"}
        created = await http.post(f"/api/{USER}/tasks", json={"title": "t"}, headers=headers)
        task_path = f"/api/{USER}/tasks/{created.json()['id']}"

        # Two worker processes, each with its own pool, toggling one row at once.
        began = time.monotonic()
        toggles = await asyncio.gather(
            *(http.patch(f"{task_path}/complete", headers=headers) for _ in range(TOGGLES))
        )
        toggled_in = time.monotonic() - began
        assert {r.status_code for r in toggles} == {200}
        assert sorted(int(r.headers["etag"].strip('"')) for r in toggles) == list(
            range(2, TOGGLES + 2)
        )
        final = await http.get(task_path, headers=headers)
        assert final.headers["etag"] == f'"{TOGGLES + 1}"'

        postmaster = server.postmaster()
        assert postmaster is not None
        postmaster_pid, socket_dir = postmaster
        # Hold a lock the next request needs, so that it is in flight when SIGTERM arrives.
        blocker = await asyncpg.connect(host=socket_dir, user="postgres", database="postgres")
        try:
            locked = blocker.transaction()
            await locked.start()
            await blocker.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
            in_flight = asyncio.create_task(http.get(task_path, headers=headers))
            await _lock_waiter(blocker)
            server.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            assert not in_flight.done()
            await locked.rollback()
        finally:
            await blocker.close()

        assert (await in_flight).status_code == 200

    assert await asyncio.wait_for(server.process.wait(), START_SECONDS) == 0
    assert server.postmaster() is None
    assert await _exits(postmaster_pid), "the embedded PostgreSQL outlived the server"
    print(f"{TOGGLES} toggles over HTTP with 2 workers: {toggled_in:.3f}s")
