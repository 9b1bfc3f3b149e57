"""Composition root: read the environment once, build configs, wire the app; CLI entry point."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware

from db import migrate
from db.embedded import database_url_or_embedded
from db.engine import Database, DatabaseConfig, create_engine
from db.errors import DatabaseMisconfigured, DatabaseUnavailable, SchemaNotCurrent
from db.url import is_pooler_host, translate_url
from resolvers.auth import AuthConfig, TokenVerifier, sign_development_token
from resolvers.context import DEFAULT_BULK_MAX_TASKS, Admission, Context, ContextFactory
from resolvers.documents import DocumentStore
from resolvers.errors import AppError
from resolvers.live import EventHub, LiveConfig
from resolvers.ratelimit import RateLimitConfig, RateLimiter, SharedRateLimiter
from resolvers.retention import RetentionConfig, RetentionJanitor
from rest_compat import docs, openapi
from rest_compat import routes as rest_routes
from rest_compat.errors import EXCEPTION_HANDLERS, detail_body
from schema.build import DEFAULT_CONFIG as DEFAULT_GRAPHQL
from schema.build import GraphQLConfig, schema_for
from schema.graphiql import GraphiQL
from schema.http import GRAPHQL_PATH, GraphQLEndpoint, graphql_error_body
from schema.persisted import MODES, ManifestError, PersistedQueries, read_manifest
from schema.persisted import Mode as PersistedMode
from schema.streams import StreamingGraphQL, allowed_origins
from schema.streams import routes as graphql_routes
from server import health, metrics
from server.application import Application
from server.cors import allowed_headers, cors
from server.devmode import development_secret, print_banner
from server.drain import DRAIN
from server.guards import BodySizeLimit, SecurityHeaders, asset_origin
from server.logs import configure_logging
from server.serve import ServeConfig, serve, tune_garbage_collection
from server.settings import ConfigError, Environment, Setting, redacted
from server.telemetry import RequestTelemetry, TelemetryConfig

log = logging.getLogger("taskql")

DEV_USER_ID = "dev-user"
# How the README tells operators to apply the migrations; messages name it.
MIGRATE_COMMAND = "taskql migrate"
# `serve`'s exit status when the database is not fit to serve (schema, login): a process
# manager may treat it as final (systemd: RestartPreventExitStatus=3) instead of looping.
EXIT_DATABASE_NOT_READY = 3
DEFAULT_LIVE = LiveConfig()


SETTINGS = (
    Setting(
        "DATABASE_URL",
        None,
        "PostgreSQL URL (Neon URLs work as pasted). Unset: embedded "
        "PostgreSQL in DATA_DIR, migrated automatically, with a development JWT secret.",
    ),
    Setting(
        "DATABASE_MIGRATION_URL",
        None,
        "Direct (non-pooled) URL used by `migrate`; defaults to DATABASE_URL.",
    ),
    Setting(
        "MIGRATE_ON_START",
        "false",
        "`true`: `serve` applies the migrations before it takes traffic (instances starting "
        "together take turns under a database lock, so it needs a direct URL); `false`: `serve` "
        "refuses to start while the schema is behind, naming the command to run.",
    ),
    Setting("DATA_DIR", ".data", "Where the embedded PostgreSQL and the development secret live."),
    Setting("HOST", "127.0.0.1", "Interface to listen on."),
    Setting("PORT", "8000", "Port to listen on."),
    Setting(
        "WORKERS",
        "1",
        "Worker processes; each accepts on its own socket (SO_REUSEPORT), and a supervising "
        "process replaces one that dies or hangs, backing off while replacements keep dying.",
    ),
    Setting(
        "WORKER_TIMEOUT",
        "30",
        "Seconds a worker's event loop may stall before the supervisor kills and replaces it "
        "(a starting worker gets at least 60 s to serve); with WORKERS > 1.",
    ),
    Setting(
        "SHUTDOWN_GRACE_SECONDS",
        "20",
        "Seconds in-flight requests get to finish after SIGTERM; with WORKERS > 1 the "
        "supervisor then kills any worker still running. Keep it below your process "
        "manager's stop timeout.",
    ),
    Setting("JWT_SECRET", None, "HS256 shared secret for verifying tokens."),
    Setting(
        "JWT_JWKS_URL",
        None,
        "JWKS URL for EdDSA/ES256/RS256/PS256 tokens, e.g. "
        "Better Auth's https://app.example.com/api/auth/jwks.",
    ),
    Setting("JWT_ISSUER", None, "Required `iss` claim (exact string), when set."),
    Setting("JWT_AUDIENCE", None, "Required `aud` claim, when set."),
    Setting(
        "DB_POOL_SIZE",
        "20",
        "Database connections per worker at most, opened when needed and closed after 5 idle "
        "minutes; requests beyond it wait for one.",
    ),
    Setting(
        "DB_POOL_TIMEOUT",
        "5",
        "Seconds a request waits for a free connection before it gets 503.",
    ),
    Setting("DB_CONNECT_TIMEOUT", "5", "Seconds to wait for a new database connection."),
    Setting("DB_STATEMENT_TIMEOUT", "5", "Seconds any one statement may run."),
    Setting(
        "DB_POOLER",
        "auto",
        "`true` behind a transaction-pooling PgBouncer, `false` for a direct connection, `auto`: "
        "true when the host name contains `-pooler` (Neon) or when the first connection finds "
        "a transaction pooler (then the log says so).",
    ),
    Setting("GRAPHIQL", "true", "Serve GraphiQL to browsers at GET /graphql."),
    Setting(
        "GRAPHQL_INTROSPECTION",
        "true",
        "Allow schema introspection (GraphiQL needs it); `false` also hides field suggestions.",
    ),
    Setting(
        "GRAPHQL_MAX_DEPTH",
        str(DEFAULT_GRAPHQL.max_depth),
        "Deepest field nesting a query may have.",
    ),
    Setting(
        "GRAPHQL_MAX_ALIASES", str(DEFAULT_GRAPHQL.max_aliases), "Most aliased fields per document."
    ),
    Setting(
        "GRAPHQL_MAX_TOKENS",
        str(DEFAULT_GRAPHQL.max_tokens),
        "Most lexical tokens per document; parsing stops at the limit.",
    ),
    Setting(
        "GRAPHQL_MAX_BYTES",
        str(DEFAULT_GRAPHQL.max_bytes),
        "Largest GraphQL document in bytes, refused before parsing.",
    ),
    Setting(
        "GRAPHQL_PERSISTED_QUERIES",
        "automatic",
        "`automatic`: Apollo's automatic persisted queries (a document sent with its hash is "
        "stored for every instance); `registered`: only documents registered with `taskql "
        "documents register` run (trusted documents); `off`: queries only.",
    ),
    Setting(
        "GRAPHQL_PERSISTED_MAX_DOCUMENTS",
        "10000",
        "Most documents stored automatically; past it, clients send their full queries. "
        "Registered documents do not count.",
    ),
    Setting(
        "BULK_MAX_TASKS",
        str(DEFAULT_BULK_MAX_TASKS),
        "Most tasks one bulk change (setTasksCompletion, deleteTasks, PATCH and DELETE "
        "/api/{user_id}/tasks) may change; more matching is refused and changes nothing.",
    ),
    Setting(
        "CORS_ORIGINS",
        None,
        "Comma-separated browser origins allowed to call the API, e.g. "
        "https://app.example.com; unset: no cross-origin access.",
    ),
    Setting(
        "CORS_ALLOW_HEADERS",
        None,
        "Request headers browsers may send besides the default ones (Authorization, "
        "Content-Type, Idempotency-Key, If-Match, X-Request-ID, traceparent, tracestate, "
        "baggage, sentry-trace, apollographql-client-name, apollographql-client-version); "
        "comma-separated.",
    ),
    Setting("LOG_LEVEL", "INFO", "Python logging level."),
    Setting(
        "RLS",
        "true",
        "Also enforce ownership with PostgreSQL row-level security, acting as DB_APP_ROLE; "
        "false: act as the login role.",
    ),
    Setting(
        "DB_APP_ROLE",
        "taskql_app",
        "Role operations act as under RLS (created by the migrations); empty: the login "
        "role, which must then be neither superuser nor BYPASSRLS.",
    ),
    Setting("MAX_BODY_BYTES", "1048576", "Largest request body accepted; larger ones get 413."),
    Setting(
        "LOG_FORMAT",
        "auto",
        "`json` (one object per line) or `text`; `auto`: json when DATABASE_URL is set.",
    ),
    Setting(
        "USER_HASH_KEY",
        None,
        "Key of the user hash in request logs. Unset: random per process, so hashes "
        "differ between workers and restarts.",
    ),
    Setting("METRICS", "true", "Serve Prometheus metrics at GET /metrics."),
    Setting(
        "PROMETHEUS_MULTIPROC_DIR",
        None,
        "Directory where every worker writes its metrics, so /metrics adds up all workers; "
        "set it when WORKERS > 1. Emptied by `serve` on start.",
    ),
    Setting(
        "GRAPHIQL_ASSETS_URL",
        "https://cdn.jsdelivr.net/npm",
        "Base URL of GraphiQL's and /api/docs' scripts, laid out as "
        "`<package>@<version>/<file>`; point it at your own copy to work offline.",
    ),
    Setting(
        "RATE_LIMIT_PER_MINUTE",
        "0",
        "Requests per minute one user may make (token bucket), across all workers and "
        "instances with the `database` store; 0: no limit.",
    ),
    Setting(
        "RATE_LIMIT_BURST",
        None,
        "Requests one user may make at once before the per-minute rate applies. Unset: "
        "RATE_LIMIT_PER_MINUTE (one minute's worth).",
    ),
    Setting(
        "RATE_LIMIT_STORE",
        "auto",
        "Where the buckets live: `database` (one per user in PostgreSQL for the whole "
        "deployment, leased out a few tokens at a time) or `memory` (in each worker, which "
        "allows 1/WORKERS of the limit); `auto`: database when DATABASE_URL is set.",
    ),
    Setting(
        "IDEMPOTENCY_KEY_SECONDS",
        "86400",
        "Seconds an Idempotency-Key is kept with its write's outcome: a retry with the key "
        "within them is replayed instead of written again. Removed within about a minute after.",
    ),
    Setting(
        "EVENT_RETENTION_SECONDS",
        "86400",
        "Seconds each task event (a change, in its owner's stream) is kept for clients to resume "
        "from. Removed within about a minute after.",
    ),
    Setting(
        "DATABASE_LISTEN_URL",
        None,
        "Direct (non-pooled) URL of the connection each worker LISTENs on for live updates; "
        "required when DATABASE_URL goes through a transaction pooler (DB_POOLER, Neon's "
        "`-pooler` host), where LISTEN receives nothing. Unset: DATABASE_URL.",
    ),
    Setting(
        "LIVE_CONNECTIONS_PER_USER",
        str(DEFAULT_LIVE.connections_per_user),
        "Live connections (WebSockets, event streams) one user may hold per worker; more are "
        "refused (HTTP 429, WebSocket close 4429).",
    ),
    Setting(
        "LIVE_SUBSCRIPTIONS_PER_CONNECTION",
        str(DEFAULT_LIVE.subscriptions_per_connection),
        "Subscriptions one WebSocket may carry at once; more get TOO_MANY_SUBSCRIPTIONS.",
    ),
    Setting(
        "LIVE_MAX_BACKLOG",
        str(DEFAULT_LIVE.max_backlog),
        "Events that may wait for one slow subscriber; past it the stream ends with its cursor "
        "(SLOW_CONSUMER; WebSocket close 1013) and the client resumes from there.",
    ),
    Setting(
        "LIVE_HEARTBEAT_SECONDS",
        "15",
        "Seconds between keep-alive comments on idle event streams (SSE).",
    ),
    Setting(
        "FORWARDED_ALLOW_IPS",
        "127.0.0.1",
        "Proxies whose X-Forwarded-For/-Proto headers are trusted (comma-separated, `*`: any).",
    ),
)

_SECRET_SETTINGS = ("secret", "user_hash_key")


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None
    migration_url: str | None
    migrate_on_start: bool
    data_dir: Path
    host: str
    port: int
    workers: int
    auth: AuthConfig
    pool_size: int
    pool_timeout: float
    connect_timeout: float
    statement_timeout: float
    pooler: bool | None
    graphiql: bool
    graphql: GraphQLConfig
    persisted_queries: PersistedMode
    persisted_max_documents: int
    bulk_max_tasks: int
    cors_origins: tuple[str, ...]
    cors_allow_headers: tuple[str, ...]
    log_level: str
    max_body_bytes: int
    row_security: bool
    # The role operations act as when row_security is on; None: the login role.
    app_role: str | None
    log_format: str
    user_hash_key: str | None
    metrics: bool
    multiprocess_dir: Path | None
    worker_timeout: float
    shutdown_grace: float
    graphiql_assets_url: str
    forwarded_allow_ips: str
    rate_limit: RateLimitConfig
    retention: RetentionConfig
    # None: DATABASE_URL (or the embedded server) also serves LISTEN.
    listen_url: str | None
    live: LiveConfig
    live_heartbeat_seconds: float

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    def database(self, url: str) -> DatabaseConfig:
        return DatabaseConfig(
            url=url,
            pool_size=self.pool_size,
            pool_timeout_seconds=self.pool_timeout,
            connect_timeout_seconds=self.connect_timeout,
            statement_timeout_seconds=self.statement_timeout,
            pooler=self.pooler,
            role=self.app_role if self.row_security else None,
            schema=migrate.expected_schema(MIGRATE_COMMAND),
        )


def read_settings(env: Mapping[str, str], *, verifies_tokens: bool = True) -> Settings:
    """Settings from environment variables; raises ConfigError naming the bad variable.

    Without `verifies_tokens` (the commands that only touch the database: migrate, documents)
    no way to verify tokens is needed, and no development secret is made.
    """
    read = Environment(SETTINGS, env)
    data_dir = read.path("DATA_DIR") or Path(".data").resolve()
    database_url = read.text("DATABASE_URL")
    secret = read.text("JWT_SECRET")
    jwks_url = read.text("JWT_JWKS_URL")
    if verifies_tokens and database_url is None and secret is None and jwks_url is None:
        secret = development_secret(data_dir)
    if verifies_tokens and secret is None and jwks_url is None:
        raise ConfigError(
            "DATABASE_URL is set but no way to verify tokens is: set JWT_JWKS_URL (e.g. Better "
            "Auth's https://your-app/api/auth/jwks) or JWT_SECRET (HS256 shared secret)."
        )
    log_format = read.choice("LOG_FORMAT", ("json", "text", "auto"))
    if log_format == "auto":
        log_format = "text" if database_url is None else "json"
    workers = read.integer("WORKERS", 1)
    per_minute = read.integer("RATE_LIMIT_PER_MINUTE", 0)
    burst = read.integer("RATE_LIMIT_BURST", 1) if read.text("RATE_LIMIT_BURST") else per_minute
    store = read.choice("RATE_LIMIT_STORE", ("database", "memory", "auto"))
    shared = store == "database" or (store == "auto" and database_url is not None)
    rate_limit = _rate_limit(workers, per_minute, burst, shared=shared)
    pool_size = read.integer("DB_POOL_SIZE", 1)
    cors_origins = read.items("CORS_ORIGINS")
    try:
        allowed_origins(cors_origins)
    except ValueError as error:
        raise ConfigError(f"CORS_ORIGINS: {error}") from None
    return Settings(
        database_url=database_url,
        migration_url=read.text("DATABASE_MIGRATION_URL") or database_url,
        migrate_on_start=_migrate_on_start(read),
        data_dir=data_dir,
        host=read.text("HOST") or "127.0.0.1",
        port=read.integer("PORT", 1, 65535),
        workers=workers,
        auth=AuthConfig(
            secret=secret,
            jwks_url=jwks_url,
            issuer=read.text("JWT_ISSUER"),
            audience=read.text("JWT_AUDIENCE"),
        ),
        pool_size=pool_size,
        pool_timeout=read.seconds("DB_POOL_TIMEOUT"),
        connect_timeout=read.seconds("DB_CONNECT_TIMEOUT"),
        statement_timeout=read.seconds("DB_STATEMENT_TIMEOUT"),
        pooler=read.flag("DB_POOLER"),
        graphiql=bool(read.flag("GRAPHIQL")),
        graphql=GraphQLConfig(
            max_depth=read.integer("GRAPHQL_MAX_DEPTH", 1),
            max_aliases=read.integer("GRAPHQL_MAX_ALIASES", 1),
            max_tokens=read.integer("GRAPHQL_MAX_TOKENS", 1),
            max_bytes=read.integer("GRAPHQL_MAX_BYTES", 1),
            introspection=bool(read.flag("GRAPHQL_INTROSPECTION")),
        ),
        persisted_queries=cast(PersistedMode, read.choice("GRAPHQL_PERSISTED_QUERIES", MODES)),
        persisted_max_documents=read.integer("GRAPHQL_PERSISTED_MAX_DOCUMENTS", 0),
        bulk_max_tasks=read.integer("BULK_MAX_TASKS", 1, 100_000),
        cors_origins=cors_origins,
        cors_allow_headers=allowed_headers(read.items("CORS_ALLOW_HEADERS")),
        log_level=(read.text("LOG_LEVEL") or "INFO").upper(),
        max_body_bytes=read.integer("MAX_BODY_BYTES", 1),
        row_security=bool(read.flag("RLS")),
        # Set but empty means "no role", which would otherwise read as unset.
        app_role=None if read.is_set_empty("DB_APP_ROLE") else read.text("DB_APP_ROLE"),
        log_format=log_format,
        user_hash_key=read.text("USER_HASH_KEY"),
        metrics=bool(read.flag("METRICS")),
        multiprocess_dir=read.path("PROMETHEUS_MULTIPROC_DIR"),
        worker_timeout=read.seconds("WORKER_TIMEOUT"),
        shutdown_grace=read.seconds("SHUTDOWN_GRACE_SECONDS"),
        graphiql_assets_url=read.text("GRAPHIQL_ASSETS_URL") or "",
        forwarded_allow_ips=read.text("FORWARDED_ALLOW_IPS") or "127.0.0.1",
        rate_limit=rate_limit,
        retention=RetentionConfig(
            event_seconds=read.seconds("EVENT_RETENTION_SECONDS"),
            idempotency_key_seconds=read.seconds("IDEMPOTENCY_KEY_SECONDS"),
            bucket_seconds=rate_limit.shared_bucket_refill_seconds,
        ),
        listen_url=_listen_url(read, database_url),
        live=LiveConfig(
            connections_per_user=read.integer("LIVE_CONNECTIONS_PER_USER", 1),
            subscriptions_per_connection=read.integer("LIVE_SUBSCRIPTIONS_PER_CONNECTION", 1),
            max_backlog=read.integer("LIVE_MAX_BACKLOG", 1),
            concurrent_reads=max(2, pool_size // 4),
        ),
        live_heartbeat_seconds=read.seconds("LIVE_HEARTBEAT_SECONDS"),
    )


def _listen_url(read: Environment, database_url: str | None) -> str | None:
    """DATABASE_LISTEN_URL, which must be set, and direct, where LISTEN would hear nothing."""
    listen_url = read.text("DATABASE_LISTEN_URL")
    if listen_url is not None:
        if _pooler_host(listen_url, "DATABASE_LISTEN_URL"):
            raise ConfigError(
                "DATABASE_LISTEN_URL must be a direct URL: LISTEN through a transaction pooler "
                "(a -pooler host) receives nothing; use the host without -pooler"
            )
        return listen_url
    pooler = read.flag("DB_POOLER")
    if database_url is not None and (
        pooler or (pooler is None and _pooler_host(database_url, "DATABASE_URL"))
    ):
        raise ConfigError(
            "DATABASE_URL goes through a transaction pooler, where LISTEN receives nothing and "
            "live updates would never arrive: set DATABASE_LISTEN_URL to the direct URL "
            "(on Neon, the same URL without -pooler in the host)"
        )
    return None


def _pooler_host(url: str, name: str) -> bool:
    try:
        return is_pooler_host(translate_url(url).host)
    except ValueError as error:
        raise ConfigError(f"{name}: {error}") from None


def _migrate_on_start(read: Environment) -> bool:
    """MIGRATE_ON_START, refused where the migrations would go through a transaction pooler,
    which cannot keep the session-level lock that makes instances take turns."""
    if not read.flag("MIGRATE_ON_START"):
        return False
    direct = read.text("DATABASE_MIGRATION_URL")
    url = direct or read.text("DATABASE_URL")
    pooled = is_pooler_host(urlsplit(url or "").hostname or "")
    if pooled or (direct is None and read.flag("DB_POOLER")):
        raise ConfigError(
            "MIGRATE_ON_START=true would migrate through a transaction pooler, which cannot "
            "hold the migrations' lock: set DATABASE_MIGRATION_URL to the direct URL"
        )
    return True


def _rate_limit(workers: int, per_minute: int, burst: int, *, shared: bool) -> RateLimitConfig:
    """The limit as one worker applies it: the whole of it against the buckets shared in
    PostgreSQL, or 1/workers of it against buckets in this process's memory."""
    if shared:
        return RateLimitConfig(per_minute=per_minute, burst=max(1, burst), shared=True)
    return RateLimitConfig(per_minute=per_minute / workers, burst=max(1.0, burst / workers))


def _rate_limiter(limit: RateLimitConfig, database: Database) -> Admission | None:
    if not limit.enabled:
        return None
    if limit.shared:
        return SharedRateLimiter(
            limit, database, on_database_unavailable=metrics.database_unavailable
        )
    return RateLimiter(limit)


def effective_configuration(settings: Settings) -> dict[str, Any]:
    """The settings as logged at start-up: secrets and URL passwords redacted."""
    return redacted(settings, _SECRET_SETTINGS)


def create_app(settings: Settings | None = None) -> Starlette:
    """The ASGI application; reads the environment when no settings are given."""
    if settings is None:
        settings = read_settings(os.environ)
        configure_logging(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        log.info(
            "starting (pid %d) with configuration %s",
            os.getpid(),
            configuration := effective_configuration(settings),
            extra={"fields": {"configuration": configuration}},
        )
        async with _open_database(settings) as (database, url):
            pool_watch = metrics.watch_pool(database)
            verifier = TokenVerifier(settings.auth, on_jwks_fetch=metrics.jwks_fetched)
            rate_limiter = _rate_limiter(settings.rate_limit, database)
            janitor = RetentionJanitor(
                database, settings.retention, on_purge=metrics.retention_purged
            )
            janitor.start()
            hub = EventHub(
                database,
                settings.live,
                listen=settings.database(settings.listen_url or url),
                metrics=metrics.LiveUpdateMetrics(),
            )
            hub.start()
            tune_garbage_collection()
            metrics.process_started()
            try:
                yield {
                    "context_factory": ContextFactory(
                        database=database,
                        verifier=verifier,
                        on_database_unavailable=metrics.database_unavailable,
                        rate_limiter=rate_limiter,
                        bulk_max_tasks=settings.bulk_max_tasks,
                        hub=hub,
                    ),
                    "database": database,
                    "janitor": janitor,
                    "documents": _document_store(settings),
                    DRAIN: hub.drain,
                }
            finally:
                await hub.close()
                await janitor.stop()
                pool_watch.cancel()
                await verifier.aclose()
                metrics.mark_process_dead(settings.multiprocess_dir, os.getpid())

    development_token = _development_token(settings)
    schema = schema_for(settings.graphql)
    graphql = GraphQLEndpoint(
        schema=schema,
        graphiql=_graphiql(settings, development_token),
        persisted=PersistedQueries(
            mode=settings.persisted_queries,
            is_valid=schema.is_valid_document,
        ),
    )
    streams = StreamingGraphQL(
        schema,
        allowed_origins=settings.cors_origins,
        heartbeat_seconds=settings.live_heartbeat_seconds,
    )
    return Application(
        routes=[
            *health.routes,
            *graphql_routes(graphql, streams),
            *rest_routes.event_routes(heartbeat_seconds=settings.live_heartbeat_seconds),
            *rest_routes.routes,
            *openapi.routes(
                max_body_bytes=settings.max_body_bytes,
                rate_limited=settings.rate_limit.enabled,
                bulk_max_tasks=settings.bulk_max_tasks,
            ),
            *docs.routes(settings.graphiql_assets_url, development_token),
            *(metrics.routes(settings.multiprocess_dir) if settings.metrics else []),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        # Outermost first: every response is logged and gets the security headers, and a
        # 413 from the body limit still carries the CORS headers a browser needs to read it.
        middleware=[
            Middleware(RequestTelemetry, config=_telemetry(settings)),
            Middleware(
                SecurityHeaders,
                graphiql_asset_origins=(asset_origin(settings.graphiql_assets_url),),
            ),
            *cors(settings.cors_origins, settings.cors_allow_headers),
            Middleware(
                BodySizeLimit,
                max_bytes=settings.max_body_bytes,
                refusal=detail_body,
                refusal_by_path={GRAPHQL_PATH: graphql_error_body},
            ),
        ],
        lifespan=lifespan,
    )


@asynccontextmanager
async def _open_database(settings: Settings) -> AsyncIterator[tuple[Database, str]]:
    """The operations' database and its URL: DATABASE_URL's, or the embedded one, started and
    migrated."""
    async with database_url_or_embedded(
        settings.database_url, settings.data_dir / "postgres"
    ) as url:
        if settings.embedded:
            await migrate.upgrade_database(settings.database(url))
        database = await Database.open(settings.database(url), upgrade=_upgrade(settings))
        try:
            yield database, url
        finally:
            await database.close()


def _document_store(settings: Settings) -> DocumentStore:
    return DocumentStore(max_automatic=settings.persisted_max_documents)


def _upgrade(settings: Settings) -> Callable[[], Awaitable[None]] | None:
    """What migrates the database when a worker finds it behind, with MIGRATE_ON_START: for
    a database that was unreachable when `serve` started (which otherwise migrates first)."""
    if not settings.migrate_on_start or settings.migration_url is None:
        return None
    return partial(migrate.upgrade_database, settings.database(settings.migration_url))


def _development_token(settings: Settings) -> Callable[[], str] | None:
    """Signs a fresh token for the development user, for the pages to offer; only with the
    embedded default and its own secret, never with DATABASE_URL set (production)."""
    if not settings.embedded or settings.auth.secret is None:
        return None
    return partial(sign_development_token, settings.auth.secret, DEV_USER_ID)


def _graphiql(settings: Settings, token: Callable[[], str] | None) -> GraphiQL | None:
    """The GraphiQL page, its Authorization header filled in when there is a development token."""
    if not settings.graphiql:
        return None
    headers = None if token is None else partial(_bearer_headers, token)
    return GraphiQL(assets_url=settings.graphiql_assets_url, default_headers=headers)


def _bearer_headers(token: Callable[[], str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token()}"}


def _telemetry(settings: Settings) -> TelemetryConfig:
    # Hashed because BLAKE2 keys are at most 64 bytes and the setting may be any string.
    key = settings.user_hash_key
    return TelemetryConfig(
        user_hash_key=hashlib.sha256(key.encode()).digest() if key else secrets.token_bytes(32)
    )


def _serve(settings: Settings) -> int:
    if not settings.embedded:
        status = asyncio.run(_check_schema(settings))
        if status != 0:
            return status
    if settings.embedded:
        assert settings.auth.secret is not None
        print_banner(
            base_url=f"http://{settings.host}:{settings.port}",
            data_dir=settings.data_dir,
            user_id=DEV_USER_ID,
            token=sign_development_token(settings.auth.secret, DEV_USER_ID),
        )
    return serve(
        "main:create_app",
        ServeConfig(
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            forwarded_allow_ips=settings.forwarded_allow_ips,
            multiprocess_dir=settings.multiprocess_dir,
            worker_timeout=settings.worker_timeout,
            shutdown_grace=settings.shutdown_grace,
        ),
    )


async def _check_schema(settings: Settings) -> int:
    """0 when the workers may start; checked here, before they do, so that a refusal is
    said once, not once per worker."""
    assert settings.migration_url is not None
    config = settings.database(settings.migration_url)
    try:
        await migrate.check_schema(config, migrate=settings.migrate_on_start)
    except DatabaseUnavailable:
        log.warning(
            "the database is unreachable: serving anyway, /readyz and requests answer 503 "
            "until it answers, and its schema is checked then"
        )
    except SchemaNotCurrent as error:
        hint = "" if error.ahead else " (or set MIGRATE_ON_START=true)"
        log.error("refusing to start: %s%s", error, hint)
        return EXIT_DATABASE_NOT_READY
    except DatabaseMisconfigured as error:
        log.error("refusing to start: %s", error)
        return EXIT_DATABASE_NOT_READY
    return 0


async def _migrate(settings: Settings, revision: str, down: bool) -> None:
    async with database_url_or_embedded(
        settings.migration_url, settings.data_dir / "postgres"
    ) as url:
        engine = create_engine(settings.database(url))
        try:
            if down:
                await migrate.downgrade(engine, revision)
            else:
                await migrate.upgrade(engine, revision)
            print(f"database at revision {await migrate.current_revision(engine)}")
        finally:
            await engine.dispose()


def _read_manifest(settings: Settings, manifest_path: Path) -> dict[str, str] | None:
    """A frontend's documents by hash, each checked against the schema; None (and why, on
    stderr) when the manifest cannot be registered."""
    try:
        manifest = orjson.loads(manifest_path.read_bytes())
        return read_manifest(manifest, schema_for(settings.graphql).is_valid_document)
    except (OSError, orjson.JSONDecodeError, ManifestError) as error:
        print(f"cannot register {manifest_path}: {error}", file=sys.stderr)
        return None


async def _register_documents(settings: Settings, documents: dict[str, str]) -> int:
    """Register a frontend's documents in the database, for every instance to find."""
    async with _open_database(settings) as (database, _url):
        try:
            added = await _document_store(settings).register(
                Context(database=database, principal=None), documents=documents
            )
        except AppError as error:
            print(f"cannot register the documents: {error.message}", file=sys.stderr)
            return 1
        except Exception as error:
            # Most likely a database the migrations have not reached yet.
            print(
                f"cannot register the documents: {type(error).__name__}: {error} (has "
                "`taskql migrate` run on this database?)",
                file=sys.stderr,
            )
            return 1
    print(f"registered {len(documents)} documents ({added} new)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="taskql", description="taskql task API")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP server")
    migrate_cmd = commands.add_parser("migrate", help="apply database migrations")
    migrate_cmd.add_argument("revision", nargs="?", default="head")
    migrate_cmd.add_argument("--down", action="store_true", help="downgrade to the revision")
    token_cmd = commands.add_parser("token", help="print an HS256 token for a user id")
    token_cmd.add_argument("user_id")
    token_cmd.add_argument("--ttl", type=int, default=86400, help="lifetime in seconds")
    documents_cmd = commands.add_parser("documents", help="persisted GraphQL documents")
    documents_actions = documents_cmd.add_subparsers(dest="action", required=True)
    register_cmd = documents_actions.add_parser(
        "register",
        help="register a frontend's documents (Apollo's persisted query manifest, or GraphQL "
        "Code Generator's persisted-documents.json), e.g. at deploy time",
    )
    register_cmd.add_argument("manifest", type=Path)
    args = parser.parse_args(argv)

    try:
        settings = read_settings(
            os.environ, verifies_tokens=args.command not in ("migrate", "documents")
        )
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "serve":
        return _serve(settings)
    if args.command == "migrate":
        asyncio.run(_migrate(settings, args.revision, args.down))
    elif args.command == "documents":
        documents = _read_manifest(settings, args.manifest)
        if documents is None:
            return 2
        return asyncio.run(_register_documents(settings, documents))
    else:
        if settings.auth.secret is None:
            print("JWT_SECRET is not set: tokens come from your auth service", file=sys.stderr)
            return 2
        print(
            sign_development_token(
                settings.auth.secret,
                args.user_id,
                ttl_seconds=args.ttl,
                issuer=settings.auth.issuer,
                audience=settings.auth.audience,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
