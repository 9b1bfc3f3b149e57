"""Per-user rate limiting: token buckets in this process's memory, or one per user in
PostgreSQL shared by the whole deployment, from which each worker leases a few tokens."""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from db import rate_limits
from db.engine import Database
from resolvers.context import Context
from resolvers.errors import RateLimited


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """How many requests one user may make: a sustained rate and a burst, as this process
    applies them (the whole deployment's limit when `shared`, else this process's share)."""

    per_minute: float = 0.0
    burst: float = 1.0
    # Users whose buckets (or leases) are kept; the least recently seen beyond this are
    # forgotten: a bucket in memory starts afresh, a lease's unspent tokens are lost.
    max_users: int = 100_000
    # True: the buckets are in PostgreSQL (SharedRateLimiter), false: in memory (RateLimiter).
    shared: bool = False

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    @property
    def shared_bucket_refill_seconds(self) -> float | None:
        """How long an empty bucket in PostgreSQL takes to fill up again; None when this
        process keeps no buckets there (no limit, or buckets in memory)."""
        if not (self.shared and self.enabled):
            return None
        return self.burst * 60.0 / self.per_minute


def _refused(wait_seconds: float) -> RateLimited:
    return RateLimited(
        "Too many requests; retry after the Retry-After seconds",
        retry_after=max(1, math.ceil(wait_seconds)),
    )


class RateLimiter:
    """Token buckets by user id in this process's memory: each holds up to `burst` tokens and
    refills continuously."""

    def __init__(
        self, config: RateLimitConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._config = config
        self._per_second = config.per_minute / 60
        self._clock = clock
        # user id -> [tokens, when they were counted]; ordered from least to most recently seen.
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def take(self, user_id: str) -> None:
        """Spend one of the user's tokens, or raise RateLimited saying when one is due."""
        now = self._clock()
        bucket = self._buckets.get(user_id)
        if bucket is None:
            bucket = self._buckets[user_id] = [self._config.burst, now]
            if len(self._buckets) > self._config.max_users:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(user_id)
            elapsed = now - bucket[1]
            bucket[0] = min(self._config.burst, bucket[0] + elapsed * self._per_second)
            bucket[1] = now
        if bucket[0] < 1:
            raise _refused((1 - bucket[0]) / self._per_second)
        bucket[0] -= 1

    async def admit(self, user_id: str) -> None:
        """The same as take(), as ContextFactory calls every limiter."""
        self.take(user_id)


def lease_size(config: RateLimitConfig) -> int:
    """Tokens a worker takes from a user's shared bucket at a time: one second's worth of the
    rate, at most a quarter of the burst, at least one.

    Leased tokens are spent without asking PostgreSQL, so a user can exceed the limit by
    the tokens the workers hold for them (one lease per worker at most), or fall short by as
    many when their requests go to other workers. One second's worth bounds that to about a
    second of extra rate per worker, and the database to about one write per user and
    worker per second, however many requests the lease serves.
    """
    per_second = config.per_minute / 60
    return max(1, min(math.floor(per_second), math.floor(config.burst / 4)))


@dataclass(slots=True)
class _Lease:
    """What this worker holds of one user's shared bucket."""

    tokens: int = 0
    # When the bucket has its next token, as last told by PostgreSQL (time.monotonic()).
    refused_until: float = 0.0


class SharedRateLimiter:
    """Token buckets in PostgreSQL, one per user for every worker of every instance
    (migration 0006); this worker leases `lease_size` tokens at a time and spends them from
    memory, so most requests cost no database round trip.

    A user's concurrent requests share one lease request (the others wait for it). While
    the bucket is known to be empty, requests are refused without asking again.
    """

    def __init__(
        self,
        config: RateLimitConfig,
        database: Database,
        *,
        on_database_unavailable: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._per_second = config.per_minute / 60
        self.lease_size = lease_size(config)
        self._database = database
        self._on_database_unavailable = on_database_unavailable
        self._clock = clock
        # user id -> lease; ordered from least to most recently seen.
        self._leases: OrderedDict[str, _Lease] = OrderedDict()
        # user id -> the lease request in flight: its result is the wait when refused.
        self._renewals: dict[str, asyncio.Task[float | None]] = {}

    async def admit(self, user_id: str) -> None:
        """Spend one of the user's leased tokens, leasing more when there are none; raise
        RateLimited when the shared bucket is empty, ServiceUnavailable when PostgreSQL is."""
        while True:
            lease = self._lease(user_id)
            if lease.tokens > 0:
                lease.tokens -= 1
                return
            wait = lease.refused_until - self._clock()
            if wait > 0:
                raise _refused(wait)
            renewal = self._renewals.get(user_id)
            if renewal is None:
                renewal = asyncio.create_task(self._renew(user_id))
                self._renewals[user_id] = renewal
                renewal.add_done_callback(_retrieve_exception)
            # Shielded: one request giving up (its client left) must not cancel the others'.
            refused_for = await asyncio.shield(renewal)
            if refused_for is not None:
                raise _refused(refused_for)
            # Granted, but other requests may have spent it first: look again.

    def _lease(self, user_id: str) -> _Lease:
        lease = self._leases.get(user_id)
        if lease is None:
            lease = self._leases[user_id] = _Lease()
            if len(self._leases) > self._config.max_users:
                self._leases.popitem(last=False)
        else:
            self._leases.move_to_end(user_id)
        return lease

    async def _renew(self, user_id: str) -> float | None:
        """Lease tokens from the user's bucket; None when granted, else seconds to wait."""
        context = Context(
            database=self._database,
            principal=None,
            on_database_unavailable=self._on_database_unavailable,
        )
        try:
            async with context.connection() as conn:
                taken = await rate_limits.take_tokens(
                    conn,
                    owner_id=user_id,
                    wanted=self.lease_size,
                    per_second=self._per_second,
                    burst=self._config.burst,
                )
        finally:
            # Before any waiter wakes: one that finds the tokens spent must start a new
            # request, not await this finished one again (which would not yield).
            del self._renewals[user_id]
        lease = self._lease(user_id)
        if taken.granted == 0:
            lease.refused_until = self._clock() + taken.wait_seconds
            return taken.wait_seconds
        lease.tokens += taken.granted
        return None


def _retrieve_exception(renewal: asyncio.Task[float | None]) -> None:
    """Mark a failed lease request's error as seen, in case every request waiting on it left
    (their clients went away): their own awaits report it otherwise."""
    if not renewal.cancelled():
        renewal.exception()
