"""Per-user rate limiting: a token bucket per user, in this process's memory."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from resolvers.errors import RateLimited


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """How many requests one user may make in this process: a sustained rate and a burst."""

    per_minute: float = 0.0
    burst: float = 1.0
    # Users whose buckets are kept; the least recently seen beyond this start afresh.
    max_users: int = 100_000

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0


class RateLimiter:
    """Token buckets by user id: each holds up to `burst` tokens and refills continuously."""

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
            wait = (1 - bucket[0]) / self._per_second
            raise RateLimited(
                "Too many requests; retry after the Retry-After seconds",
                retry_after=max(1, math.ceil(wait)),
            )
        bucket[0] -= 1
