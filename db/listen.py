"""One worker's LISTEN connection: direct, outside the pool, reconnecting by itself.

asyncpg's pool runs `UNLISTEN *` when it takes a connection back, and a transaction pooler
never delivers notifications at all, so the listener holds a session of its own on the
server's direct URL. asyncpg does not reconnect: the termination listener says when the
server closed the session, a periodic ping finds one that died silently (a suspended Neon
compute, a dropped NAT entry), and either way the listener reconnects with back-off and
calls `on_connect` so that its owner can catch up on what it may have missed meanwhile.
NOTIFY goes out on the same session, which is otherwise idle and so never waits behind
requests for a pooled connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from db.engine import DatabaseConfig, direct_connection
from db.errors import DatabaseUnavailable, translate

log = logging.getLogger(__name__)

# One statement, one round trip, one commit however many payloads.
_NOTIFY = "SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload"
# PostgreSQL refuses a NOTIFY payload of 8000 bytes or more.
MAX_PAYLOAD_BYTES = 7999
_FIRST_BACKOFF_SECONDS = 0.1


class Listener:
    """LISTENs on `channel` and hands each payload to `on_notify`, from the event loop."""

    def __init__(
        self,
        config: DatabaseConfig,
        channel: str,
        *,
        on_notify: Callable[[str], None],
        on_connect: Callable[[], None],
        ping_seconds: float = 10.0,
        max_backoff_seconds: float = 5.0,
    ) -> None:
        self._dsn, connect_args = direct_connection(config)
        self._connect_args: dict[str, Any] = {
            **connect_args,
            "server_settings": {
                **connect_args.get("server_settings", {}),
                "application_name": "taskql-listener",
            },
        }
        self._channel = channel
        self._on_notify = on_notify
        self._on_connect = on_connect
        self._ping_seconds = ping_seconds
        self._timeout = float(connect_args.get("command_timeout") or 5.0)
        self._max_backoff = max_backoff_seconds
        self._backoff = _FIRST_BACKOFF_SECONDS
        self._connection: asyncpg.Connection | None = None
        # asyncpg runs one query at a time per connection: pings and NOTIFYs take turns.
        self._turn = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._connection is not None

    def start(self) -> None:
        """Connect (and keep reconnecting) in the background; the process starts regardless."""
        self._task = asyncio.create_task(self._run(), name=f"listen-{self._channel}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def notify(self, payloads: Sequence[str]) -> None:
        """NOTIFY each payload on the channel; raises DatabaseUnavailable when not connected."""
        connection = self._connection
        if connection is None:
            raise DatabaseUnavailable("not listening")
        try:
            async with self._turn:
                await connection.execute(_NOTIFY, self._channel, list(payloads))
        except Exception as error:
            raise translate(error) from error

    async def _run(self) -> None:
        while True:
            try:
                await self._session()
            except Exception as error:
                if not isinstance(translate(error), DatabaseUnavailable):
                    log.error("LISTEN connection failed", exc_info=error)
                log.warning(
                    "LISTEN connection lost or refused (%s); reconnecting in %.1f s",
                    type(error).__name__,
                    self._backoff,
                )
            # Jittered, so that the workers of every instance do not reconnect in step.
            await asyncio.sleep(self._backoff * random.uniform(0.5, 1.5))  # noqa: S311
            self._backoff = min(self._backoff * 2, self._max_backoff)

    async def _session(self) -> None:
        """LISTEN on a new connection until it ends; returns or raises when it does."""
        lost = asyncio.Event()
        connection = await asyncpg.connect(self._dsn, **self._connect_args)
        try:
            connection.add_termination_listener(lambda _: lost.set())
            await connection.add_listener(self._channel, self._notified)
            self._connection = connection
            self._backoff = _FIRST_BACKOFF_SECONDS
            log.info("listening on %r", self._channel)
            self._on_connect()
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self._ping_seconds)
                    continue
                async with self._turn:
                    await connection.fetchval("SELECT 1", timeout=self._timeout)
            raise DatabaseUnavailable("the server ended the LISTEN session")
        finally:
            self._connection = None
            connection.terminate()

    def _notified(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        self._on_notify(payload)
