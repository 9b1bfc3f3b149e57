"""The embedded PostgreSQL: start, reuse, sharing between processes, recovery after a hard kill."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from db.embedded import EmbeddedPostgres, start_embedded_postgres
from tests.support.cli import PROJECT_DIR

pytestmark = pytest.mark.slow

TIMEOUT = 60.0

# Stands in for a uvicorn worker: attaches, reports its url, releases when told to.
HOLDER_SCRIPT = """
import sys
from pathlib import Path
from db.embedded import start_embedded_postgres
handle = start_embedded_postgres(Path(sys.argv[1]))
print(handle.url, flush=True)
sys.stdin.readline()
handle.stop()
print("stopped", flush=True)
"""


class Holder:
    """A separate Python process holding a handle on the embedded server."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self.proc = proc
        self.url = url

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    async def spawn(cls, data_dir: Path) -> Holder:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            HOLDER_SCRIPT,
            str(data_dir),
            cwd=PROJECT_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        holder = cls(proc, "")
        holder.url = await holder._read_line()
        return holder

    async def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"\n")
        await self.proc.stdin.drain()
        assert await self._read_line() == "stopped"
        assert await asyncio.wait_for(self.proc.wait(), TIMEOUT) == 0

    async def kill(self) -> None:
        self.proc.kill()
        await self.proc.wait()

    async def _read_line(self) -> str:
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), TIMEOUT)
        if not line:
            stderr = await asyncio.wait_for(self.proc.stderr.read(), TIMEOUT)
            pytest.fail(f"holder {self.pid} exited early:\n{stderr.decode()}")
        return line.decode().strip()


def _holder_pids(data_dir: Path) -> list[int]:
    pids: list[int] = json.loads((data_dir / ".handle_pids.json").read_text())
    return sorted(pids)


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except FileNotFoundError:
        return None


def _socket_dir(url: str) -> Path:
    return Path(parse_qs(urlsplit(url).query)["host"][0])


def _sockets_in(directory: Path) -> list[Path]:
    return list(directory.glob(".s.PGSQL.*"))


async def _select_one(url: str) -> object:
    conn = await asyncpg.connect(url, timeout=TIMEOUT)
    try:
        return await conn.fetchval("select 1")
    finally:
        await conn.close()


async def _assert_stopped(data_dir: Path, url: str) -> None:
    assert _postmaster_pid(data_dir) is None
    with pytest.raises((FileNotFoundError, ConnectionRefusedError)):
        await asyncpg.connect(url, timeout=TIMEOUT)


def _stop_leftover_server(data_dir: Path) -> None:
    # A failed test can leave its server up, which would outlive pytest when only killed holder
    # processes held it: release what dead holders left, then end the server if still held.
    if _postmaster_pid(data_dir) is None:
        return
    start_embedded_postgres(data_dir).stop()
    pid = _postmaster_pid(data_dir)
    if pid is not None:
        os.kill(pid, signal.SIGINT)


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # One data dir per module: initdb runs once, later starts are warm.
    data_dir = tmp_path_factory.mktemp("embedded") / "pg"
    yield data_dir
    _stop_leftover_server(data_dir)


@pytest.fixture
def fresh_dir(tmp_path: Path) -> Iterator[Path]:
    data_dir = tmp_path / "pg"
    yield data_dir
    _stop_leftover_server(data_dir)


@pytest.fixture
def attach(shared_dir: Path) -> Iterator[Callable[..., EmbeddedPostgres]]:
    # Handles a failing test did not stop are stopped here; stop() is idempotent, so the ones it
    # did stop are unaffected.
    handles: list[EmbeddedPostgres] = []

    def _attach(data_dir: Path = shared_dir) -> EmbeddedPostgres:
        handle = start_embedded_postgres(data_dir)
        handles.append(handle)
        return handle

    yield _attach
    for handle in handles:
        handle.stop()


@pytest.fixture
async def spawn_holder() -> AsyncIterator[Callable[[Path], Awaitable[Holder]]]:
    holders: list[Holder] = []

    async def _spawn(data_dir: Path) -> Holder:
        holder = await Holder.spawn(data_dir)
        holders.append(holder)
        return holder

    yield _spawn
    for holder in holders:
        if holder.proc.returncode is None:
            await holder.kill()


async def test_start_serves_queries_over_the_url(
    attach: Callable[..., EmbeddedPostgres], shared_dir: Path
) -> None:
    handle = attach()

    assert handle.data_dir == shared_dir
    parts = urlsplit(handle.url)
    assert (parts.scheme, parts.username, parts.path) == ("postgresql", "postgres", "/postgres")
    assert _sockets_in(_socket_dir(handle.url)), "no PostgreSQL socket in the url's host dir"
    conn = await asyncpg.connect(handle.url, timeout=TIMEOUT)
    try:
        assert await conn.fetchval("select 1") == 1
        assert await conn.fetchval("select current_database()") == "postgres"
    finally:
        await conn.close()

    handle.stop()
    await _assert_stopped(shared_dir, handle.url)


async def test_start_twice_in_one_process_shares_the_server(
    attach: Callable[..., EmbeddedPostgres], shared_dir: Path
) -> None:
    first = attach()
    server_pid = _postmaster_pid(shared_dir)
    second = attach()

    assert second.url == first.url
    assert _postmaster_pid(shared_dir) == server_pid is not None
    assert _holder_pids(shared_dir) == [os.getpid()]

    first.stop()
    first.stop()
    assert await _select_one(second.url) == 1
    assert _holder_pids(shared_dir) == [os.getpid()]

    second.stop()
    await _assert_stopped(shared_dir, second.url)
    assert _holder_pids(shared_dir) == []
    second.stop()


async def test_server_runs_until_the_last_of_two_processes_stops(
    fresh_dir: Path, spawn_holder: Callable[[Path], Awaitable[Holder]]
) -> None:
    # Started together on a fresh dir, like uvicorn workers on a fresh machine: they race for
    # initdb and for the first start.
    first, second = await asyncio.gather(spawn_holder(fresh_dir), spawn_holder(fresh_dir))

    assert first.url == second.url
    assert _holder_pids(fresh_dir) == sorted([first.pid, second.pid])
    assert await _select_one(first.url) == 1

    await first.stop()
    assert _holder_pids(fresh_dir) == [second.pid]
    assert _postmaster_pid(fresh_dir) is not None
    assert await _select_one(second.url) == 1

    await second.stop()
    assert _holder_pids(fresh_dir) == []
    await _assert_stopped(fresh_dir, second.url)


async def test_start_after_another_process_stopped_the_server_restarts_it(
    spawn_holder: Callable[[Path], Awaitable[Holder]],
    attach: Callable[..., EmbeddedPostgres],
    shared_dir: Path,
) -> None:
    attach().stop()  # this process has used the server before and let go of it
    # Here this process lets go while another still holds the server, which the other then stops.
    mine = attach()
    other = await spawn_holder(shared_dir)
    mine.stop()
    await other.stop()
    await _assert_stopped(shared_dir, other.url)

    again = attach()
    assert await _select_one(again.url) == 1
    assert _holder_pids(shared_dir) == [os.getpid()]
    again.stop()
    await _assert_stopped(shared_dir, again.url)


async def test_dead_holder_is_pruned_so_the_last_stop_still_stops_the_server(
    spawn_holder: Callable[[Path], Awaitable[Holder]],
    attach: Callable[..., EmbeddedPostgres],
    shared_dir: Path,
) -> None:
    victim = await spawn_holder(shared_dir)
    await victim.kill()
    # The hard kill skipped every cleanup: the server runs on and the dead PID stays listed.
    assert victim.pid in _holder_pids(shared_dir)
    assert await _select_one(victim.url) == 1

    handle = attach()
    assert _holder_pids(shared_dir) == [os.getpid()]

    handle.stop()
    await _assert_stopped(shared_dir, handle.url)


async def test_unreadable_holder_list_is_reset(
    attach: Callable[..., EmbeddedPostgres], shared_dir: Path
) -> None:
    attach().stop()  # make sure the data dir is initialised
    (shared_dir / ".handle_pids.json").write_text("[12")  # a write cut short by a kill

    handle = attach()
    assert _holder_pids(shared_dir) == [os.getpid()]
    handle.stop()
    await _assert_stopped(shared_dir, handle.url)


async def test_socket_moves_out_of_a_data_dir_too_long_for_a_unix_socket(
    attach: Callable[..., EmbeddedPostgres], tmp_path: Path
) -> None:
    data_dir = tmp_path / ("d" * 110) / "pg"
    assert len(str(data_dir / ".s.PGSQL.5432")) > 107  # the limit of sun_path on Linux

    handle = attach(data_dir)
    socket_dir = _socket_dir(handle.url)
    assert not socket_dir.is_relative_to(data_dir)
    assert await _select_one(handle.url) == 1

    handle.stop()
    await _assert_stopped(data_dir, handle.url)
    # pgserver leaves the directory behind; it is empty once the server has removed its socket.
    await asyncio.to_thread(socket_dir.rmdir)


@pytest.mark.parametrize(
    ("make_dir", "reason"),
    [
        (lambda tmp: tmp / "file", "not a directory"),
        (lambda tmp: tmp / "file" / "pg", "cannot be created"),
        (lambda tmp: tmp / "other", "not empty and is not a PostgreSQL data directory"),
    ],
    ids=["file", "below-a-file", "foreign-contents"],
)
def test_unusable_data_dir_raises_runtime_error_naming_it(
    tmp_path: Path, make_dir: Callable[[Path], Path], reason: str
) -> None:
    (tmp_path / "file").write_text("not a directory\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me\n")
    data_dir = make_dir(tmp_path)

    with pytest.raises(RuntimeError, match=reason) as caught:
        start_embedded_postgres(data_dir)

    assert str(data_dir) in str(caught.value)
    # Refused before pgserver touched anything (as root it would chown the directory).
    assert (tmp_path / "other").stat().st_uid == os.getuid()
    assert (tmp_path / "other" / "notes.txt").read_text() == "keep me\n"
    assert not (tmp_path / "other" / "PG_VERSION").exists()
