"""Live task events for one worker: a hub that fans each owner's events out to its streams.

Each write, once committed, wakes the owner's channel here at once and is announced to
the other workers and instances by a coalesced NOTIFY (resolvers/wakeups.py). A woken
channel reads the owner's new events once, through the pool and row-level security like
any read, and pushes them to every stream of that owner on this worker; each stream keeps
its own position and fills any gap from the database (resolvers/streams.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from db import events as event_queries
from db.engine import Database, DatabaseConfig
from db.errors import DatabaseUnavailable
from db.listen import Listener
from resolvers.auth import Principal
from resolvers.errors import (
    ServiceUnavailable,
    ShuttingDown,
    TokenExpired,
    TooManyConnections,
    TooManySubscriptions,
)
from resolvers.events import TaskEvent, event_from_row, parse_cursor
from resolvers.streams import EventStream
from resolvers.wakeups import CHANNEL, EVERYONE, WakeUps, owner_key

log = logging.getLogger(__name__)

_REREAD_AFTER_FAILURE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class LiveConfig:
    """Limits of live updates in one worker, and how wake-ups are batched."""

    connections_per_user: int = 100
    subscriptions_per_connection: int = 10
    # Events waiting for one subscription before it is ended as a slow consumer.
    max_backlog: int = 1000
    notify_delay_seconds: float = 0.005
    page_size: int = 500
    # Reads of event streams at once, so that live updates leave the pool to requests.
    concurrent_reads: int = 4


class LiveMetrics(Protocol):
    """What the hub reports (server/metrics.py records it)."""

    def subscribers(self, change: int) -> None: ...
    def delivered(self, lag_seconds: float | None) -> None: ...
    def ended(self, code: str) -> None: ...


@dataclass(eq=False, slots=True)
class _Channel:
    """The streams of one owner on this worker, and how far the hub has read for them."""

    owner_id: str
    key: str
    # Lists, not sets: usually one item, and an idle subscriber pays for each container (a
    # set of one is 216 bytes, a list 88).
    streams: list[EventStream] = field(default_factory=list)
    # Last position pushed; None until the first stream has read the head.
    position: int | None = None
    reading: bool = False
    # Woken again while reading (or before the head was known): read once more.
    again: bool = False


class EventHub:
    """Every live stream of this worker, by owner; one per process."""

    def __init__(
        self,
        database: Database,
        config: LiveConfig,
        *,
        listen: DatabaseConfig,
        metrics: LiveMetrics | None = None,
    ) -> None:
        self._database = database
        self.config = config
        self._metrics = metrics
        self._listener = Listener(
            listen, CHANNEL, on_notify=self._notified, on_connect=self._reconnected
        )
        self._wakeups = WakeUps(self._listener.notify, delay_seconds=config.notify_delay_seconds)
        self._channels: dict[str, _Channel] = {}
        self._owners_by_key: dict[str, list[str]] = {}
        self._connections: dict[str, int] = {}
        self._reads = asyncio.Semaphore(config.concurrent_reads)
        self._tasks: set[asyncio.Task[None]] = set()
        self._draining = False
        self._streams = 0
        self._idle = asyncio.Event()

    @property
    def listening(self) -> bool:
        """Whether wake-ups from other workers reach this one now."""
        return self._listener.connected

    @property
    def open_streams(self) -> int:
        """Streams open in this worker, those still opening included."""
        return self._streams

    @property
    def database(self) -> Database:
        return self._database

    @property
    def page_size(self) -> int:
        return self.config.page_size

    def start(self) -> None:
        self._listener.start()

    async def close(self) -> None:
        await self._listener.close()
        for task in list(self._tasks):
            task.cancel()

    def changed(self, owner_id: str) -> None:
        """A write for `owner_id` committed in this worker: wake its streams here and elsewhere."""
        key = owner_key(owner_id)
        channel = self._channels.get(owner_id)
        if channel is not None:
            self._wake(channel)
        self._wakeups.add(key)

    def connect(self, principal: Principal) -> LiveConnection:
        """A live connection of the principal's; refused past the limit per user."""
        if self._draining:
            raise ServiceUnavailable("This server is shutting down; connect again", retry_after=1)
        user_id = principal.user_id
        count = self._connections.get(user_id, 0)
        if count >= self.config.connections_per_user:
            raise TooManyConnections(
                f"At most {self.config.connections_per_user} live connections per user",
                retry_after=5,
            )
        self._connections[user_id] = count + 1
        return LiveConnection(self, principal)

    async def drain(self, timeout_seconds: float = 5.0) -> None:
        """End every stream with a cursor to resume from (elsewhere), and wait for the doors
        to say goodbye to their clients, `timeout_seconds` at most."""
        self._draining = True
        for channel in list(self._channels.values()):
            for stream in list(channel.streams):
                stream.end(ShuttingDown("The server is restarting", cursor=stream.cursor))
        if self._streams:
            self._idle.clear()
            try:
                async with asyncio.timeout(timeout_seconds):
                    await self._idle.wait()
            except TimeoutError:
                log.warning("%d live streams were still open at shutdown", self._streams)

    async def read_after(self, owner_id: str, position: int) -> list[TaskEvent]:
        """The owner's next events after `position`, a page at most; DatabaseUnavailable."""
        async with self._reads, self._database.connect() as conn:
            rows = await event_queries.select_events_after(
                conn, owner_id=owner_id, after=position, limit=self.config.page_size
            )
        return [event_from_row(row) for row in rows]

    async def head(self, owner_id: str) -> int:
        async with self._reads, self._database.connect() as conn:
            return await event_queries.select_stream_head(conn, owner_id=owner_id)

    async def purged_through(self, owner_id: str) -> int:
        async with self._reads, self._database.connect() as conn:
            return await event_queries.select_purged_through(conn, owner_id=owner_id)

    async def open_stream(self, connection: LiveConnection, after: str | None) -> EventStream:
        """A stream of the connection's viewer's events after `after` (see subscribe)."""
        principal = connection.principal
        position = parse_cursor(after, field="after")
        if time.time() >= principal.expires_at:
            raise TokenExpired("The token has expired", cursor=after or "")
        if self._draining:
            raise ShuttingDown("The server is restarting", cursor=after or "")
        owner_id = principal.user_id
        stream = EventStream(
            self,
            owner_id,
            expires_at=principal.expires_at,
            max_backlog=self.config.max_backlog,
            on_delivered=self._delivered,
            on_close=functools.partial(self._leave, connection),
            after=position,
        )
        channel = self._join(stream)
        try:
            head = await self.head(owner_id)
        except DatabaseUnavailable as error:
            stream.close()
            raise ServiceUnavailable(
                "The database is unavailable; retry shortly", retry_after=2
            ) from error
        stream.start(after=position, head=head)
        if channel.position is None:
            channel.position = head
            if channel.again:
                self._wake(channel)
        return stream

    def _join(self, stream: EventStream) -> _Channel:
        owner_id = stream.owner_id
        channel = self._channels.get(owner_id)
        if channel is None:
            channel = _Channel(owner_id, owner_key(owner_id))
            self._channels[owner_id] = channel
            owners = self._owners_by_key.get(channel.key)
            if owners is None:
                self._owners_by_key[channel.key] = [owner_id]
            else:
                owners.append(owner_id)
        channel.streams.append(stream)
        self._streams += 1
        if self._metrics is not None:
            self._metrics.subscribers(1)
        return channel

    def _leave(self, connection: LiveConnection, stream: EventStream) -> None:
        _discard(connection.streams, stream)
        channel = self._channels.get(stream.owner_id)
        if channel is not None:
            _discard(channel.streams, stream)
            if not channel.streams:
                del self._channels[stream.owner_id]
                owners = self._owners_by_key[channel.key]
                _discard(owners, stream.owner_id)
                if not owners:
                    del self._owners_by_key[channel.key]
        self._streams -= 1
        if self._metrics is not None:
            self._metrics.subscribers(-1)
            if stream.ended_by is not None:
                self._metrics.ended(stream.ended_by)
        if not self._streams:
            self._idle.set()

    def release(self, user_id: str) -> None:
        """A connection of `user_id`'s closed."""
        count = self._connections.get(user_id, 0) - 1
        if count > 0:
            self._connections[user_id] = count
        else:
            self._connections.pop(user_id, None)

    def _delivered(self, event: TaskEvent, live: bool) -> None:
        if self._metrics is not None:
            recorded = event.recorded_at
            lag = None if not live or recorded is None else time.time() - recorded.timestamp()
            self._metrics.delivered(lag)

    def _wake(self, channel: _Channel) -> None:
        if channel.position is None or channel.reading:
            channel.again = True
            return
        channel.reading = True
        self._spawn(self._pump(channel))

    async def _pump(self, channel: _Channel) -> None:
        """Read the owner's new events and push them to its streams, until none are left."""
        try:
            while True:
                channel.again = False
                since = channel.position
                assert since is not None
                try:
                    events = await self.read_after(channel.owner_id, since)
                except DatabaseUnavailable:
                    # Its streams read for themselves once a later wake-up shows the gap.
                    loop = asyncio.get_running_loop()
                    loop.call_later(_REREAD_AFTER_FAILURE_SECONDS, self._wake_owner, channel)
                    return
                if events:
                    channel.position = events[-1].position
                    for stream in list(channel.streams):
                        stream.push(events, since=since)
                if len(events) < self.config.page_size and not channel.again:
                    return
        finally:
            channel.reading = False

    def _spawn(self, work: Coroutine[None, None, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush_wakeups(self) -> None:
        await self._wakeups.flush()

    def _wake_owner(self, channel: _Channel) -> None:
        if self._channels.get(channel.owner_id) is channel:
            self._wake(channel)

    def _wake_all(self) -> None:
        for channel in list(self._channels.values()):
            self._wake(channel)

    def _notified(self, payload: str) -> None:
        keys = self._wakeups.decode(payload)
        if keys is None:
            return
        if EVERYONE in keys:
            self._wake_all()
            return
        for key in keys:
            for owner_id in self._owners_by_key.get(key, ()):
                self._wake(self._channels[owner_id])

    def _reconnected(self) -> None:
        # Wake-ups sent while this worker was not listening are lost: read every stream.
        self._wake_all()
        self._spawn(self._flush_wakeups())


class LiveConnection:
    """One client connection's live streams (a WebSocket, or one SSE response), which end
    when its token expires."""

    def __init__(self, hub: EventHub, principal: Principal) -> None:
        self.principal = principal
        self.streams: list[EventStream] = []  # a list: see _Channel.streams
        # Called once the token has expired and the streams have ended (the WebSocket door
        # then closes its socket, subscriptions or not).
        self.on_expired: Callable[[], object] | None = None
        # Subscriptions being opened, which count towards the limit already.
        self._opening = 0
        self._hub = hub
        self._closed = False
        # One timer for the connection rather than one in each waiting stream: an idle
        # subscriber then waits on nothing but its future (bench/idle_memory.py).
        self._expiry: asyncio.TimerHandle | None = None
        self._expire_later()

    def _expire_later(self) -> None:
        expires_at = self.principal.expires_at
        if not math.isinf(expires_at):
            delay = max(0.0, expires_at - time.time())
            self._expiry = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        if time.time() < self.principal.expires_at:
            # The loop's clock ran ahead of the wall clock that `exp` is read on.
            self._expire_later()
            return
        for stream in list(self.streams):
            stream.end(TokenExpired("The token has expired", cursor=stream.cursor))
        if self.on_expired is not None:
            self.on_expired()

    async def subscribe(self, *, after: str | None) -> EventStream:
        """The viewer's task events after the cursor `after` (None: from now on).

        First every event after the cursor that is still kept, in order, then live ones;
        a cursor older than what is kept (or not of this stream) gets one resync event.
        """
        limit = self._hub.config.subscriptions_per_connection
        if len(self.streams) + self._opening >= limit:
            raise TooManySubscriptions(f"At most {limit} subscriptions per connection")
        self._opening += 1
        try:
            stream = await self._hub.open_stream(self, after)
        finally:
            self._opening -= 1
        self.streams.append(stream)
        return stream

    def close(self) -> None:
        """The client went away: close its streams and free its place; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        for stream in list(self.streams):
            stream.close()
        self._hub.release(self.principal.user_id)


def _discard(items: list[Any], item: object) -> None:
    """Remove `item` from `items` if it is there."""
    if item in items:
        items.remove(item)
