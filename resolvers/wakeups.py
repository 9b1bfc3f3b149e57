"""Wake-ups between workers: which owners' streams moved, sent coalesced after commit.

A wake-up only tells other workers (of this instance and of others) to read an owner's
stream; the recorded events are the truth. So they go out after the writes committed,
collected for a few milliseconds and sent as one NOTIFY: every commit that notifies takes a
database-wide lock, and one NOTIFY per write would cap writes (measured here: 15,000 -> 4,200
commits/s). A wake-up lost (a dropped connection) costs latency until the next one, never
an event: readers read from their own cursor.

Owners travel as short hashes, which keeps payloads small whatever a user id looks like
and keeps user ids out of the notification channel; a collision only wakes a stream that
then finds nothing new.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterator, Sequence

from db.errors import DatabaseUnavailable
from db.listen import MAX_PAYLOAD_BYTES

log = logging.getLogger(__name__)

CHANNEL = "taskql_events"
# Sent instead of keys when too many are pending: every worker wakes all its streams.
EVERYONE = "*"
# Beyond this many distinct owners pending (the listener down for long), send EVERYONE.
_MAX_PENDING = 100_000

Send = Callable[[Sequence[str]], Awaitable[None]]


def owner_key(owner_id: str) -> str:
    """The owner as it travels in wake-ups: 16 hex digits."""
    return hashlib.blake2b(owner_id.encode(), digest_size=8).hexdigest()


class WakeUps:
    """Collects the owners this worker wrote for, and NOTIFYs them at most every `delay`."""

    def __init__(self, send: Send, *, delay_seconds: float) -> None:
        self._send = send
        self._delay = delay_seconds
        # Marks this worker's own payloads, which it has already acted on locally.
        self.sender = secrets.token_hex(6)
        self._pending: set[str] = set()
        self._scheduled = False
        self._flushing: asyncio.Task[None] | None = None

    def add(self, key: str) -> None:
        """Announce `key` in the next wake-up."""
        pending = self._pending
        if len(pending) >= _MAX_PENDING:
            pending.clear()
            pending.add(EVERYONE)
        elif EVERYONE not in pending:
            pending.add(key)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_later(self._delay, self._flush_soon)

    def decode(self, payload: str) -> list[str] | None:
        """The keys another worker announced; None for this worker's own wake-ups."""
        sender, _, keys = payload.partition(" ")
        return None if sender == self.sender else keys.split()

    def _flush_soon(self) -> None:
        self._scheduled = False
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush_pending())

    async def _flush_pending(self) -> None:
        # Keys added while a NOTIFY is on its way go out right after it.
        try:
            while self._pending and await self.flush():
                pass
        finally:
            self._flushing = None

    async def flush(self) -> bool:
        """Send what is pending; whether it went out (if not, it is kept for the next try)."""
        keys, self._pending = self._pending, set()
        if not keys:
            return True
        try:
            await self._send(list(self._payloads(keys)))
        except Exception as error:
            # Sent again when the listener reconnects (EventHub flushes then) or with the next.
            if not isinstance(error, DatabaseUnavailable):
                log.error("sending wake-ups failed", exc_info=error)
            self._pending |= keys
            return False
        return True

    def _payloads(self, keys: set[str]) -> Iterator[str]:
        """`<sender> <key> <key> ...`, each under PostgreSQL's payload limit."""
        payload = self.sender
        for key in keys:
            if len(payload) + 1 + len(key) > MAX_PAYLOAD_BYTES:
                yield payload
                payload = self.sender
            payload += " " + key
        yield payload
