"""Persisted GraphQL documents: found by the SHA-256 of their text, kept in PostgreSQL so that
every instance knows what any one learnt, with this process's cache in front."""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from db import documents as document_queries
from resolvers.context import Context
from resolvers.errors import RateLimited
from resolvers.ratelimit import RateLimitConfig, RateLimiter

log = logging.getLogger(__name__)

# New documents one user may have stored automatically, per process: a burst (a frontend's
# documents met for the first time after a deploy) and a rate after it, so that one account
# cannot fill the store on its own. Past it, queries still run; they are just not stored.
REGISTRATION_BURST = 100
REGISTRATIONS_PER_MINUTE = 10


def document_hash(text: str) -> str:
    """The hash clients send: lower-case hexadecimal SHA-256 of the document's UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class Document:
    """A stored document; `deployed` when a frontend's deployment registered it."""

    text: str
    deployed: bool


class DocumentStore:
    """Documents by hash, for one process.

    A hash names one text forever, so a document found once is cached for good (least
    recently used ones make room); a miss is asked of the database each time, since another
    instance may have stored the document since. The cache is an OrderedDict because lookups
    are async (functools' caches cannot hold them) and entries never expire.
    """

    def __init__(self, *, max_automatic: int, cache_size: int = 1024) -> None:
        self._max_automatic = max_automatic
        self._cache_size = cache_size
        self._cache: OrderedDict[str, Document] = OrderedDict()
        self._registrations = RateLimiter(
            RateLimitConfig(per_minute=REGISTRATIONS_PER_MINUTE, burst=REGISTRATION_BURST)
        )
        self._full_reported = False

    async def find(
        self, ctx: Context, *, hash: str, deployed_only: bool = False
    ) -> Document | None:
        """The document with this hash, if any instance stored it (and a deployment registered
        it, with `deployed_only`). A document only ever becomes a deployed one, never the
        reverse, so one cached as not deployed is asked for again where that matters."""
        cached = self._cache.get(hash)
        if cached is not None and (cached.deployed or not deployed_only):
            self._cache.move_to_end(hash)
            return cached
        async with ctx.connection() as conn:
            stored = await document_queries.select_document(conn, hash=hash)
        if stored is None:
            return None
        document = Document(text=stored.text, deployed=stored.deployed)
        self._remember(hash, document)
        return None if deployed_only and not document.deployed else document

    async def learn(self, ctx: Context, *, hash: str, text: str) -> bool:
        """Store a document a client sent with its hash (automatic persisted queries), within
        the limits: the viewer's registration rate and the store's size. Whether it is stored.

        The caller has checked that the hash is the text's and that the document is valid.
        """
        if hash in self._cache:
            return True
        try:
            self._registrations.take(ctx.viewer.user_id)
        except RateLimited:
            return False
        async with ctx.connection() as conn:
            stored = await document_queries.insert_automatic(
                conn, hash=hash, document=text, max_automatic=self._max_automatic
            )
        if stored:
            self._full_reported = False
        elif not self._full_reported:
            self._full_reported = True
            log.warning(
                "the persisted documents store holds %d automatic documents "
                "(GRAPHQL_PERSISTED_MAX_DOCUMENTS): new ones are not stored, clients send "
                "their full queries instead",
                self._max_automatic,
            )
        return stored

    async def register(self, ctx: Context, *, documents: Mapping[str, str]) -> int:
        """Register a deployment's documents (hash -> text, checked by the caller) all
        together; how many were not registered by a deployment before."""
        async with ctx.connection() as conn:
            added = await document_queries.insert_deployed(conn, documents_by_hash=documents)
        for hash, text in documents.items():
            self._remember(hash, Document(text=text, deployed=True))
        return added

    def _remember(self, hash: str, document: Document) -> None:
        self._cache[hash] = document
        self._cache.move_to_end(hash)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
