"""The retention janitor: each process removes expired events and idempotency keys (and
rate-limit buckets full again) about once a minute, with no human involved; PostgreSQL lets
one purge run at a time across all processes.

Home-made because the job is one statement a minute on the pool we already have: a scheduler
library or pg_cron would add a moving part (pg_cron is not on every host, e.g. not on every
Neon plan) for no gain. A database that expired rows by itself (partitions dropped by age)
would let us delete it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from db import retention as retention_queries
from db.engine import Database
from db.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

# How often each process tries; with several, some purge finds nothing left, which is cheap.
PURGE_INTERVAL_SECONDS = 60.0
# How long one purge may run: far longer than a request's statement, for the backlog left
# when every process was down for a while (it holds one pooled connection meanwhile).
PURGE_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """How long events and idempotency keys are kept, at least, before they are removed."""

    event_seconds: float = 86400.0
    idempotency_key_seconds: float = 86400.0
    # Rate-limit buckets untouched this long are full again and go (the time an empty one
    # takes to refill); None: this process keeps no buckets in PostgreSQL, so leaves them.
    bucket_seconds: float | None = None


class RetentionJanitor:
    """Purges expired rows every `interval_seconds` from `start()` until `stop()`."""

    def __init__(
        self,
        database: Database,
        config: RetentionConfig,
        *,
        interval_seconds: float = PURGE_INTERVAL_SECONDS,
        on_purge: Callable[[int], None] | None = None,
    ) -> None:
        self._database = database
        self._config = config
        self._interval = interval_seconds
        # Called with the number of rows each purge removed; main.py counts them in the metrics.
        self._on_purge = on_purge
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def purge_once(self) -> int | None:
        """Remove what has expired now; the rows removed, None if another process is at it."""
        async with self._database.connect() as conn:
            removed = await retention_queries.purge_expired(
                conn,
                event_seconds=self._config.event_seconds,
                key_seconds=self._config.idempotency_key_seconds,
                bucket_seconds=self._config.bucket_seconds,
                timeout_seconds=PURGE_TIMEOUT_SECONDS,
            )
        if removed is not None and self._on_purge is not None:
            self._on_purge(removed)
        return removed

    def start(self) -> None:
        """Purge in the background, the first time within one interval."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="retention janitor")

    async def stop(self) -> None:
        """Stop purging; a purge under way is cancelled (it rolls back, and runs again later)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        # Workers started together would all try at once; a random first wait spreads them.
        delay = random.uniform(0, self._interval)  # noqa: S311 (not a secret)
        while True:
            await asyncio.sleep(delay)
            delay = self._interval
            try:
                removed = await self.purge_once()
            except DatabaseUnavailable as error:
                # Down or failing over: the next round tries again.
                log.warning("retention purge failed, retrying in %.0f s: %s", delay, error)
            except Exception:
                log.exception("retention purge failed, retrying in %.0f s", delay)
            else:
                if removed is None:
                    log.debug("retention purge skipped: another process is purging")
                else:
                    log.debug("retention purge removed %d rows", removed)
