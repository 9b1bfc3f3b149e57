"""A primary and its synchronous streaming standby on loopback: crash one, promote the other."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest

from tests.support.servers import START_TIMEOUT_SECONDS, ThrowawayPostgres, postgres_bin_dir

STANDBY_NAME = "taskql_standby"
# Commits on the primary return once the standby has flushed them (synchronous_commit=on, the
# default): an acknowledged write survives the primary's loss. Given on the primary's command
# line only, so the promoted standby does not wait for a standby of its own.
PRIMARY_SETTINGS = {"wal_level": "replica", "synchronous_standby_names": STANDBY_NAME}


@dataclass(frozen=True, slots=True)
class ReplicatedPostgres:
    """A running primary and a hot standby that streams from it synchronously."""

    primary: ThrowawayPostgres
    standby: ThrowawayPostgres

    def url(self, database: str = "postgres", *, read_write: bool = True) -> str:
        """A libpq multi-host URL naming both servers; read_write: only a primary will do."""
        hosts = f"127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
        query = "?target_session_attrs=read-write" if read_write else ""
        return f"postgresql://postgres@{hosts}/{database}{query}"

    def wait_until_synchronous(self) -> None:
        """Return once the primary counts the standby as its synchronous one."""
        _wait_for(
            lambda: (
                self.primary.query(
                    "SELECT sync_state FROM pg_stat_replication "
                    f"WHERE application_name = '{STANDBY_NAME}'"
                )
                == "sync"
            ),
            "the standby to replicate synchronously",
        )

    def wait_until_replayed(self) -> None:
        """Return once the standby shows everything the primary has written so far.

        Synchronous commit waits for the standby's disk, not its replay, so a read on the
        standby straight after a commit may not see it yet.
        """
        written = self.primary.query("SELECT pg_current_wal_lsn()")
        _wait_for(
            lambda: self.standby.query(f"SELECT pg_last_wal_replay_lsn() >= '{written}'") == "t",
            "the standby to replay the primary's writes",
        )


def replicated_postgres() -> Generator[ReplicatedPostgres, None, None]:
    """A started ReplicatedPostgres for a fixture, both servers removed afterwards, whatever
    happened to them; skips when no PostgreSQL binaries with pg_basebackup and psql exist."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None or not all((bin_dir / name).is_file() for name in ("pg_basebackup", "psql")):
        pytest.skip(
            "PostgreSQL server binaries with pg_basebackup and psql not found: install "
            "postgresql (apt-get install postgresql)"
        )
    with ExitStack() as cleanup:
        primary = ThrowawayPostgres(bin_dir, settings=PRIMARY_SETTINGS)
        cleanup.callback(primary.remove)
        primary.start()
        standby = primary.standby(STANDBY_NAME)
        cleanup.callback(standby.remove)
        standby.start()
        pair = ReplicatedPostgres(primary, standby)
        pair.wait_until_synchronous()
        yield pair


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)
