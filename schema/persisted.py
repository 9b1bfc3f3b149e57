"""Persisted queries for /graphql: Apollo's automatic persisted queries protocol, registered-only
("trusted") documents, and reading a frontend's manifest of documents to register at deploy time.

The protocol: a client sends `extensions.persistedQuery = {version: 1, sha256Hash}` without the
query; an unknown hash gets the error PERSISTED_QUERY_NOT_FOUND (message PersistedQueryNotFound,
which older clients match on), and the client sends the hash and the query, which is checked
against the hash and stored, so that every instance knows it from then on. Strawberry has no
implementation of it (its issue #1707); this module is ours until it has one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from resolvers.context import Context
from resolvers.documents import DocumentStore, document_hash

Mode = Literal["automatic", "registered", "off"]
MODES: tuple[Mode, ...] = ("automatic", "registered", "off")

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# A miss must not be kept by a cache between the client and us (a GET by hash would then
# never find the document it registers next).
_NOT_STORED = {"Cache-Control": "no-store"}


class PersistedQueryError(Exception):
    """The request cannot run as sent; a GraphQL error with this code and HTTP status."""

    def __init__(
        self, message: str, code: str, status: int, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.headers = dict(headers or {})


def _not_found() -> PersistedQueryError:
    # 200, as Apollo Server answers it: the protocol's normal first step, not a failure.
    return PersistedQueryError(
        "PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND", 200, _NOT_STORED
    )


def _not_registered() -> PersistedQueryError:
    return PersistedQueryError(
        "This server runs only documents registered at deploy time "
        "(GRAPHQL_PERSISTED_QUERIES=registered); register the frontend's documents with "
        "`python main.py documents register <manifest.json>`",
        "PERSISTED_QUERY_NOT_REGISTERED",
        400,
    )


def _bad_request(message: str) -> PersistedQueryError:
    return PersistedQueryError(message, "BAD_REQUEST", 400)


@dataclass(frozen=True, slots=True)
class PersistedQueries:
    """How /graphql treats persisted queries.

    `automatic`: hashes are looked up, and a document sent with its hash is stored for every
    instance. `registered`: only documents a deployment registered run, whether sent by hash or
    in full. `off`: a hash alone gets PERSISTED_QUERY_NOT_SUPPORTED, and clients send queries.
    """

    mode: Mode
    # Whether a document parses and validates under the schema's limits (it is then storable).
    is_valid: Callable[[str], bool]

    async def document(
        self, store: DocumentStore, context: Context, query: str | None, extensions: Any
    ) -> str:
        """The text of the document to run; raises PersistedQueryError when there is none."""
        hash = persisted_hash(extensions)
        if hash is None or self.mode == "off":
            if query is None:
                if hash is None:
                    raise _bad_request("`query` must be a string")
                raise PersistedQueryError(
                    "PersistedQueryNotSupported", "PERSISTED_QUERY_NOT_SUPPORTED", 200, _NOT_STORED
                )
            if self.mode == "registered":
                await self._registered(store, context, document_hash(query))
            return query
        if query is None:
            found = await store.find(context, hash=hash, deployed_only=self.mode == "registered")
            if found is None:
                raise _not_found()
            return found.text
        if document_hash(query) != hash:
            raise _bad_request("persistedQuery.sha256Hash is not the SHA-256 of the query")
        if self.mode == "registered":
            await self._registered(store, context, hash)
        elif context.principal is not None and self.is_valid(query):
            # Only a signed-in client's valid documents are stored: nobody else fills the store.
            await store.learn(context, hash=hash, text=query)
        return query

    @staticmethod
    async def _registered(store: DocumentStore, context: Context, hash: str) -> None:
        if await store.find(context, hash=hash, deployed_only=True) is None:
            raise _not_registered()


def persisted_hash(extensions: Any) -> str | None:
    """The hash in `extensions.persistedQuery`, lower-cased; None when there is none."""
    if extensions is None:
        return None
    if not isinstance(extensions, dict):
        raise _bad_request("`extensions` must be an object")
    persisted = extensions.get("persistedQuery")
    if persisted is None:
        return None
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise _bad_request("persistedQuery must be an object with version 1")
    hash = persisted.get("sha256Hash")
    if not isinstance(hash, str) or _SHA256.fullmatch(hash) is None:
        raise _bad_request("persistedQuery.sha256Hash must be 64 hexadecimal digits")
    return hash.lower()


class ManifestError(Exception):
    """A manifest that cannot be registered; the message says which document and why."""


def read_manifest(manifest: Any, is_valid: Callable[[str], bool]) -> dict[str, str]:
    """Documents by hash from a frontend's manifest, each checked before anything is stored.

    Two formats: Apollo's persisted query manifest (`{"format":
    "apollo-persisted-query-manifest", "operations": [{"id", "name", "body"}, ...]}`, written
    by @apollo/generate-persisted-query-manifest) and GraphQL Code Generator's
    persisted-documents.json (`{"<hash>": "<document>", ...}`). Ids must be SHA-256 hashes of
    the documents, the ids clients send.
    """
    if isinstance(manifest, dict) and manifest.get("format") == "apollo-persisted-query-manifest":
        operations = manifest.get("operations")
        if not isinstance(operations, list):
            raise ManifestError("an Apollo manifest needs a list of operations")
        entries = []
        for operation in operations:
            if not isinstance(operation, dict):
                raise ManifestError("each operation must be an object with an id and a body")
            entries.append((operation.get("id"), operation.get("body"), operation.get("name")))
    elif isinstance(manifest, dict):
        entries = [(hash, body, None) for hash, body in manifest.items()]
    else:
        raise ManifestError(
            "not a manifest: expected Apollo's persisted query manifest or an object of "
            "hash -> document (GraphQL Code Generator's persisted-documents.json)"
        )
    documents: dict[str, str] = {}
    for hash, body, name in entries:
        label = f"{name or 'document'} {hash}"
        if not isinstance(body, str) or not isinstance(hash, str):
            raise ManifestError(f"{label}: id and body must be strings")
        if hash.lower() != document_hash(body):
            raise ManifestError(
                f"{label}: the id is not the SHA-256 of the body, which is what clients send"
            )
        if not is_valid(body):
            raise ManifestError(f"{label}: does not validate against this server's schema")
        documents[hash.lower()] = body
    return documents
