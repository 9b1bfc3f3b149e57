"""One subscription's events: those after its cursor first, then live ones; in order, once each.

Live events arrive pushed by the owner's channel (resolvers/live.py), which reads each change
once per worker for all of that owner's subscriptions. The stream keeps its own position
and reads the database itself whenever what it holds does not follow on from it: at the
start (the cursor is older than the live events), after a gap (a missed wake-up, a database
outage) or when it fell behind. Positions grow in an owner's stream but skip (one sequence
numbers every owner's events, migration 0009), so each push says the position it follows on
from: one that follows on from past what the stream holds shows a gap. An event at or before
the stream's position is a duplicate, dropped.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, cast

from db.errors import DatabaseUnavailable
from resolvers.errors import SlowConsumer, StreamEnded, TokenExpired
from resolvers.events import TaskEvent, resync_event

_FIRST_RETRY_SECONDS = 0.2
# The shared empty queue of a stream that has nothing queued; never appended to.
_NOTHING: deque[TaskEvent] = deque(maxlen=0)
_MAX_RETRY_SECONDS = 5.0


class EventSource(Protocol):
    """Where a stream reads an owner's events (resolvers.live.EventHub is one)."""

    def read_after(self, owner_id: str, position: int) -> Awaitable[list[TaskEvent]]: ...
    def head(self, owner_id: str) -> Awaitable[int]: ...
    def purged_through(self, owner_id: str) -> Awaitable[int]: ...
    @property
    def page_size(self) -> int: ...


# Told of each event delivered: whether it was live, and how long ago it was recorded.
OnDelivered = Callable[[TaskEvent, bool], None]


class EventStream:
    """The async iterator a subscription reads; `close()` it when done."""

    def __init__(
        self,
        source: EventSource,
        owner_id: str,
        *,
        expires_at: float,
        max_backlog: int,
        on_delivered: OnDelivered,
        on_close: Callable[[EventStream], None],
        after: int | None = None,
    ) -> None:
        self.owner_id = owner_id
        self._source = source
        # Checked before each wait: a stream opened as the token expired ends at once; one
        # that waits is ended by its connection's timer (resolvers/live.py).
        self._expires_at = expires_at
        self._max_backlog = max_backlog
        self._on_delivered = on_delivered
        self._on_close = on_close
        # Until `start`, the client's own cursor: a stream ended while it opens (the server
        # drains) tells its client to resume from where it asked to, not from the beginning.
        self._last = -1 if after is None else after
        self._started = False
        # Events pushed but not delivered; and events read, to deliver before anything else.
        # Made when first needed: most subscriptions sit idle, and each empty deque is 0.6 KB.
        self._live: deque[TaskEvent] = _NOTHING
        self._replay: deque[TaskEvent] = _NOTHING
        # Whether to read the database before delivering live events, and whether live
        # events were left to such a read while one was going on.
        self._behind = False
        self._skipped = False
        self._retry_at = 0.0
        self._retry_seconds = _FIRST_RETRY_SECONDS
        self._ended: StreamEnded | None = None
        self._closed = False
        # The reader's wake-up while it waits: a bare future, with a timer when the wait has a
        # limit (an asyncio.Event and asyncio.timeout would cost each idle subscriber about
        # 1.5 KB more: bench/idle_memory.py --lines).
        self._waiter: asyncio.Future[None] | None = None

    @property
    def cursor(self) -> str:
        """The cursor of the last event delivered (or the one the stream started from)."""
        return str(max(self._last, 0))

    @property
    def ended_by(self) -> str | None:
        """The code of what ended the stream from the server's side (a slow reader, an
        expired token, a shutdown); None while it runs or when its reader closed it."""
        ended = self._ended
        return None if ended is None or type(ended) is StreamEnded else ended.code

    def start(self, *, after: int | None, head: int) -> None:
        """Begin after position `after` (None: after `head`, live events only).

        Called once the stream receives live events, so nothing committed after `head` was
        read can be missed; anything pushed meanwhile is read again from the database.
        """
        self._started = True
        if after is None or after > head:
            self._last = head
            if after is not None:
                # A cursor this stream never gave (another database, a restore): start over.
                self._replay = deque([resync_event(head)])
        else:
            self._last = after
        self._behind = self._skipped or self._last < head

    def push(self, events: Sequence[TaskEvent], *, since: int) -> None:
        """Live events of the owner, in order: every one of theirs after position `since` up
        to the last of `events` (called by the owner's channel)."""
        if self._ended is not None or events[-1].position <= self._last:
            return
        if not self._started or self._behind:
            # A read of the database is due anyway, and will include these.
            self._skipped = True
        else:
            held = self._held()
            if since > held:
                # Events after `held` up to `since` never reached this stream: read them.
                self._live = _NOTHING
                self._behind = True
            else:
                if self._live is _NOTHING:
                    self._live = deque()
                self._live.extend(event for event in events if event.position > held)
                if len(self._live) > self._max_backlog:
                    self.end(
                        SlowConsumer(
                            "Events arrived faster than they were read", cursor=self.cursor
                        )
                    )
                    return
        _wake(self._waiter)

    def _held(self) -> int:
        """The position up to which the stream has every event, delivered or not."""
        if self._live:
            return self._live[-1].position
        if self._replay:
            return self._replay[-1].position
        return self._last

    def end(self, reason: StreamEnded) -> None:
        """End the stream: the reader gets `reason` instead of the next event."""
        if self._ended is None:
            self._ended = reason
            self._live = self._replay = _NOTHING
            _wake(self._waiter)

    def close(self) -> None:
        """The reader is done with the stream (however it ended); idempotent."""
        if not self._closed:
            self._closed = True
            self.end(StreamEnded("closed", cursor=self.cursor))
            self._on_close(self)

    def __aiter__(self) -> EventStream:
        return self

    def __anext__(self) -> Awaitable[TaskEvent]:
        # next()'s own coroutine rather than one awaiting it: an idle subscriber keeps one
        # suspended frame less. Without a limit to its wait, next() returns an event or raises.
        return cast(Awaitable[TaskEvent], self.next())

    async def next(self, *, idle_seconds: float | None = None) -> TaskEvent | None:
        """The next event; None when none came for `idle_seconds`. Raises StreamEnded."""
        idle_until = math.inf if idle_seconds is None else time.monotonic() + idle_seconds
        while True:
            if self._ended is not None:
                raise self._ended
            if time.time() >= self._expires_at:
                self.end(TokenExpired("The token has expired", cursor=self.cursor))
                continue
            if self._replay:
                return self._deliver(self._replay.popleft(), live=False)
            live = self._live
            while live and live[0].position <= self._last:
                live.popleft()
            if live:
                return self._deliver(live.popleft(), live=True)
            if self._behind and time.monotonic() >= self._retry_at:
                await self._read()
                continue
            await self._wait(self._next_wait(idle_until))
            if time.monotonic() >= idle_until:
                return None

    def _next_wait(self, idle_until: float) -> float:
        """Seconds until the reader's patience ends or a read is due (the token's expiry
        ends the stream from its connection: resolvers/live.py)."""
        limit = idle_until
        if self._behind:
            limit = min(limit, self._retry_at)
        return max(0.0, limit - time.monotonic())

    async def _wait(self, seconds: float) -> None:
        """Wait for a push or an end, `seconds` at most."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None if math.isinf(seconds) else loop.call_later(seconds, _wake, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    async def _read(self) -> None:
        """Read what follows the position from the database (one page)."""
        self._skipped = False
        source = self._source
        try:
            events = await source.read_after(self.owner_id, self._last)
            # Asked after the read: a purge between the two then shows, never a silent gap.
            if await source.purged_through(self.owner_id) > self._last:
                # Events past the cursor are no longer kept: the client refetches instead.
                events = [resync_event(await source.head(self.owner_id))]
        except DatabaseUnavailable:
            self._retry_at = time.monotonic() + self._retry_seconds
            self._retry_seconds = min(self._retry_seconds * 2, _MAX_RETRY_SECONDS)
            return
        self._retry_seconds = _FIRST_RETRY_SECONDS
        if events and self._ended is None:
            self._replay = deque(events)
        # A resync is followed by a read past it, which finds what came after its head.
        resynced = bool(events) and events[0].kind == "resync"
        self._behind = resynced or len(events) >= source.page_size or self._skipped

    def _deliver(self, event: TaskEvent, *, live: bool) -> TaskEvent:
        self._last = max(self._last, event.position)
        self._on_delivered(event, live)
        return event


def _wake(waiter: asyncio.Future[None] | None) -> None:
    """End the reader's wait, if it is waiting."""
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
