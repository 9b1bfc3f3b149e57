"""The live-update hub against a real PostgreSQL: catch-up then live, in order and once each;
resync past retention; wake-ups between workers; slow consumers; expiry; limits; drain."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg
import pytest

from db.engine import Database, DatabaseConfig
from resolvers import tasks
from resolvers.auth import Principal
from resolvers.context import Context
from resolvers.errors import (
    ShuttingDown,
    SlowConsumer,
    TokenExpired,
    TooManyConnections,
    TooManySubscriptions,
)
from resolvers.events import TaskEvent
from resolvers.live import EventHub, LiveConfig
from resolvers.streams import EventSource, EventStream
from resolvers.wakeups import CHANNEL
from tests.support.app import make_settings
from tests.support.streams import new_user, recorded_cursors

Hub = Callable[..., Awaitable[EventHub]]


@pytest.fixture
async def hubs(database_url: str) -> AsyncIterator[Hub]:
    """Starts hubs (each as one worker would have: its pool and its LISTEN connection)."""
    opened: list[tuple[EventHub, Database]] = []
    config = make_settings(database_url, DB_POOL_SIZE="3").database(database_url)

    async def hub(**limits: float) -> EventHub:
        database = await Database.open(config)
        started = EventHub(database, LiveConfig(**limits), listen=DatabaseConfig(url=database_url))
        started.start()
        opened.append((started, database))
        await _until(lambda: started.listening)
        return started

    yield hub
    for started, database in opened:
        await started.close()
        await database.close()


async def _until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def context(hub: EventHub, user_id: str, expires_at: float = float("inf")) -> Context:
    principal = Principal(user_id, expires_at=expires_at)
    return Context(database=hub.database, principal=principal, hub=hub)


async def create(hub: EventHub, user_id: str, count: int = 1) -> list[int]:
    ids = []
    for number in range(count):
        task = await tasks.create_task(context(hub, user_id), data={"title": f"t{number}"})
        ids.append(task.id)
    return ids


async def take(stream: EventStream, count: int, seconds: float = 10.0) -> list[TaskEvent]:
    async with asyncio.timeout(seconds):
        return [await stream.__anext__() for _ in range(count)]


@asynccontextmanager
async def subscribed(
    hub: EventHub, user_id: str, *, after: str | None = None, expires_at: float = float("inf")
) -> AsyncIterator[EventStream]:
    connection = context(hub, user_id, expires_at).live_connection()
    try:
        yield await connection.subscribe(after=after)
    finally:
        connection.close()


@pytest.mark.slow
async def test_a_cursor_gets_what_was_missed_then_live_events_in_order_once(
    hubs: Hub, database_url: str
) -> None:
    hub = await hubs()
    user = new_user()
    [task_id] = await create(hub, user)
    await tasks.toggle_task(context(hub, user), task_id=task_id)
    async with subscribed(hub, user, after="0") as stream:
        missed = await take(stream, 2)
        await tasks.update_task(context(hub, user), task_id=task_id, data={"title": "new"})
        await tasks.delete_task(context(hub, user), task_id=task_id)
        live = await take(stream, 2)
        assert await stream.next(idle_seconds=0.3) is None

    events = missed + live
    assert [e.kind for e in events] == ["created", "completion_toggled", "updated", "deleted"]
    assert [e.cursor for e in events] == await recorded_cursors(database_url, user)
    assert [e.version for e in events] == [1, 2, 3, 3]
    assert events[2].task is not None
    assert events[2].task.title == "new"
    assert (events[3].task, events[3].task_id) == (None, task_id)


async def test_without_a_cursor_only_new_events_come(hubs: Hub, database_url: str) -> None:
    hub = await hubs()
    user = new_user()
    await create(hub, user, 2)
    async with subscribed(hub, user) as stream:
        started_at = int(stream.cursor)
        await create(hub, user)
        [event] = await take(stream, 1)
        assert await stream.next(idle_seconds=0.3) is None
    *before, new = await recorded_cursors(database_url, user)
    assert int(before[-1]) <= started_at < int(new)
    assert event.cursor == new


@pytest.mark.slow
async def test_an_event_recorded_without_a_wake_up_arrives_with_the_next(
    hubs: Hub, database_url: str
) -> None:
    hub = await hubs()
    user = new_user()
    async with subscribed(hub, user) as stream:
        # A write that woke nobody (another instance whose NOTIFY was lost, say).
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "SELECT taskql_create_task($1, 'silent', '', NULL, false, NULL, NULL)", user
            )
        finally:
            await conn.close()
        assert await stream.next(idle_seconds=0.3) is None
        await create(hub, user)
        events = await take(stream, 2)
    assert [e.cursor for e in events] == await recorded_cursors(database_url, user)
    assert events[0].task is not None
    assert events[0].task.title == "silent"


async def test_a_write_in_one_worker_reaches_a_stream_in_another(
    hubs: Hub, database_url: str
) -> None:
    writer, reader = await hubs(), await hubs()
    user = new_user()
    async with subscribed(reader, user) as stream:
        started = time.monotonic()
        await create(writer, user, 3)
        events = await take(stream, 3)
    assert [e.cursor for e in events] == await recorded_cursors(database_url, user)
    assert time.monotonic() - started < 5


@pytest.mark.slow
async def test_writes_are_announced_in_few_notifications(hubs: Hub, database_url: str) -> None:
    hub = await hubs(notify_delay_seconds=0.05)
    heard: list[str] = []
    conn = await asyncpg.connect(database_url)
    await conn.add_listener(CHANNEL, lambda *args: heard.append(args[3]))
    try:
        users = [new_user() for _ in range(50)]
        await asyncio.gather(*(create(hub, user, 4) for user in users))
        await asyncio.sleep(0.3)
    finally:
        await conn.close()
    announced = [key for payload in heard for key in payload.split()[1:]]
    # 200 commits, a handful of NOTIFYs (each a database-wide lock), every owner in them.
    assert len(heard) <= 40, len(heard)
    assert len(set(announced)) == len(users)


@pytest.mark.slow
async def test_a_cursor_past_retention_gets_one_resync(hubs: Hub, database_url: str) -> None:
    hub = await hubs()
    user = new_user()
    await create(hub, user, 3)
    first, _, last = await recorded_cursors(database_url, user)
    await _purge_every_event(database_url)
    async with subscribed(hub, user, after=first) as stream:
        [resync] = await take(stream, 1)
        assert await stream.next(idle_seconds=0.3) is None
        await create(hub, user)
        [after_it] = await take(stream, 1)
    [new] = await recorded_cursors(database_url, user)
    assert (resync.kind, resync.task) == ("resync", None)
    assert int(last) <= int(resync.cursor) < int(new)
    assert after_it.cursor == new


async def _purge_every_event(database_url: str) -> None:
    """Every event recorded so far past retention, as the retention task would purge it."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SELECT taskql_purge(now() + interval '1 second', now())")
    finally:
        await conn.close()


async def test_a_cursor_this_stream_never_gave_gets_a_resync(hubs: Hub, database_url: str) -> None:
    hub = await hubs()
    user = new_user()
    await create(hub, user)
    # Past every position this database has given (one from another database, say).
    async with subscribed(hub, user, after=str(10**18)) as stream:
        [resync] = await take(stream, 1)
    [recorded] = await recorded_cursors(database_url, user)
    assert resync.kind == "resync"
    assert int(recorded) <= int(resync.cursor) < 10**18


@pytest.mark.slow
async def test_a_slow_consumer_is_dropped_with_a_cursor_that_loses_nothing(
    hubs: Hub, database_url: str
) -> None:
    hub = await hubs(max_backlog=5)
    user = new_user()
    async with subscribed(hub, user) as stream:
        await create(hub, user)
        first = await take(stream, 1)
        await create(hub, user, 10)  # not read meanwhile
        await asyncio.sleep(0.3)
        with pytest.raises(SlowConsumer) as dropped:
            await take(stream, 1)
    recorded = await recorded_cursors(database_url, user)
    assert dropped.value.cursor == first[0].cursor == recorded[0]
    async with subscribed(hub, user, after=dropped.value.cursor) as resumed:
        rest = await take(resumed, 10)
    assert [e.cursor for e in rest] == recorded[1:]


@pytest.mark.slow
async def test_a_stream_ends_within_a_second_of_its_tokens_expiry(hubs: Hub) -> None:
    hub = await hubs()
    user = new_user()
    expires_at = time.time() + 1.0
    async with subscribed(hub, user, expires_at=expires_at) as stream:
        with pytest.raises(TokenExpired) as expired:
            # Waiting with no limit of its own: the connection's expiry must end it.
            await asyncio.wait_for(stream.next(idle_seconds=None), 5)
    assert expires_at <= time.time() < expires_at + 1.0
    assert expired.value.code == "TOKEN_EXPIRED"


async def test_an_expired_token_cannot_subscribe(hubs: Hub) -> None:
    hub = await hubs()
    with pytest.raises(TokenExpired):
        async with subscribed(hub, new_user(), expires_at=time.time() - 1):
            pass


async def test_connections_per_user_and_subscriptions_per_connection_are_limited(
    hubs: Hub,
) -> None:
    hub = await hubs(connections_per_user=2, subscriptions_per_connection=1)
    user = new_user()
    first, second = (context(hub, user).live_connection() for _ in range(2))
    with pytest.raises(TooManyConnections):
        context(hub, user).live_connection()
    # Another user has places of their own.
    context(hub, new_user()).live_connection().close()
    await first.subscribe(after=None)
    with pytest.raises(TooManySubscriptions):
        await first.subscribe(after=None)
    first.close()
    third = context(hub, user).live_connection()
    for connection in (second, third):
        connection.close()


async def test_draining_ends_every_stream_with_its_cursor(hubs: Hub, database_url: str) -> None:
    hub = await hubs()
    user = new_user()
    async with subscribed(hub, user) as stream:
        await create(hub, user)
        await take(stream, 1)
        draining = asyncio.create_task(hub.drain(timeout_seconds=5))
        with pytest.raises(ShuttingDown) as ended:
            await take(stream, 1)
    await draining
    assert [ended.value.cursor] == await recorded_cursors(database_url, user)


async def test_a_stream_still_opening_when_draining_begins_ends_with_its_clients_cursor(
    hubs: Hub,
) -> None:
    hub = await hubs()
    user = new_user()
    await create(hub, user, 3)
    connection = context(hub, user).live_connection()
    try:
        opening = asyncio.create_task(connection.subscribe(after="2"))
        # Only until it has joined its owner's channel: it then awaits the stream's head
        # from the database, and the drain comes first.
        for _ in range(10_000):
            if hub.open_streams:
                break
            await asyncio.sleep(0)
        assert hub.open_streams == 1
        await hub.drain(timeout_seconds=0.1)
        stream = await opening
        with pytest.raises(ShuttingDown) as ended:
            await take(stream, 1)
    finally:
        connection.close()
    assert ended.value.cursor == "2"


class _OvertakenRead:
    """The hub as a stream's event source, where the first read after `position` is overtaken:
    after it has read and before it returns, `overtake` runs (a write commits and its event
    is pushed to the stream), as happens when a write lands during a read."""

    def __init__(self, hub: EventHub, position: int, overtake: Callable[[], Awaitable[None]]):
        self._hub = hub
        self._position = position
        self._overtake = overtake
        self._overtaken = False

    async def read_after(self, owner_id: str, position: int) -> list[TaskEvent]:
        events = await self._hub.read_after(owner_id, position)
        if position == self._position and not self._overtaken:
            self._overtaken = True
            await self._overtake()
        return events

    async def head(self, owner_id: str) -> int:
        return await self._hub.head(owner_id)

    async def purged_through(self, owner_id: str) -> int:
        return await self._hub.purged_through(owner_id)

    @property
    def page_size(self) -> int:
        return self._hub.page_size


async def test_an_event_pushed_during_a_read_that_missed_it_is_read_next_not_a_gap(
    hubs: Hub, database_url: str
) -> None:
    hub = await hubs(page_size=2)
    user = new_user()
    await create(hub, user, 2)
    second = int((await recorded_cursors(database_url, user))[1])

    async def write_and_push() -> None:
        await create(hub, user)
        stream.push(await hub.read_after(user, second), since=second)

    stream = _stream_reading_from(_OvertakenRead(hub, second, write_and_push), user)
    # Two events, a full page: the stream reads again after them, and that read finds
    # nothing, while the third event commits and is pushed.
    stream.start(after=0, head=second)
    events = await take(stream, 3)
    stream.close()
    assert [event.kind for event in events] == ["created"] * 3
    assert [event.cursor for event in events] == await recorded_cursors(database_url, user)


async def test_after_a_resync_past_the_known_head_the_stream_waits_for_what_follows(
    hubs: Hub, database_url: str
) -> None:
    hub = await hubs()
    user = new_user()
    await create(hub, user, 3)
    last = int((await recorded_cursors(database_url, user))[-1])
    # Past retention: the three events are gone.
    await _purge_every_event(database_url)

    async def write() -> None:
        # A write the stream is not told of: the head moves on while it reads.
        await create(hub, user)

    stream = _stream_reading_from(_OvertakenRead(hub, 0, write), user)
    stream.start(after=0, head=last)
    first = await take(stream, 1)
    then = await stream.next(idle_seconds=0.2)
    stream.close()
    [written_meanwhile] = await recorded_cursors(database_url, user)
    assert [event.kind for event in first] == ["resync"]
    assert int(first[0].cursor) >= int(written_meanwhile)
    # Not the same resync again and again, until the next write.
    assert then is None


async def test_events_read_past_the_known_head_are_followed_by_no_resync(
    hubs: Hub, database_url: str
) -> None:
    hub = await hubs()
    user = new_user()
    await create(hub, user, 3)
    recorded = await recorded_cursors(database_url, user)

    async def push_the_first() -> None:
        # The owner's channel read before the second and third events committed.
        stream.push((await hub.read_after(user, 0))[:1], since=0)

    stream = _stream_reading_from(_OvertakenRead(hub, 0, push_the_first), user)
    # The head when the stream started was the first event; the read finds all three.
    stream.start(after=0, head=int(recorded[0]))
    events = await take(stream, 3)
    then = await stream.next(idle_seconds=0.2)
    stream.close()
    assert [event.kind for event in events] == ["created"] * 3
    assert [event.cursor for event in events] == recorded
    assert then is None, then


def _stream_reading_from(source: EventSource, user: str) -> EventStream:
    """A stream of `user`'s events read through `source`, as the hub would open it."""
    return EventStream(
        source,
        user,
        expires_at=math.inf,
        max_backlog=10,
        on_delivered=lambda event, live: None,
        on_close=lambda closed: None,
    )


async def test_a_push_that_does_not_follow_on_shows_a_gap_read_from_the_database(
    hubs: Hub, database_url: str
) -> None:
    """Positions skip (one sequence numbers everyone's events), so a gap shows by what a push
    follows on from: the events between are read, not lost."""
    hub = await hubs()
    user = new_user()
    head = await hub.head(user)
    stream = _stream_reading_from(hub, user)
    stream.start(after=None, head=head)
    await create(hub, user, 2)
    first, second = await recorded_cursors(database_url, user)
    # A channel's read that followed on from the first event, which this stream never got.
    stream.push(await hub.read_after(user, int(first)), since=int(first))
    events = await take(stream, 2)
    then = await stream.next(idle_seconds=0.2)
    stream.close()
    assert [event.cursor for event in events] == [first, second]
    assert then is None, then
