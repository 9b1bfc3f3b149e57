"""Turn a libpq-style DATABASE_URL (as Neon prints it) into what SQLAlchemy + asyncpg accept."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

log = logging.getLogger(__name__)

# asyncpg takes these libpq parameters as connect() keywords under other names.
_RENAMED = {"connect_timeout": "timeout", "application_name": None}
# asyncpg accepts these keywords as they are.
_PASSED_THROUGH = {"host", "port", "user", "password", "target_session_attrs"}
_SSL_MODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}


@dataclass(frozen=True, slots=True)
class AsyncpgUrl:
    """A SQLAlchemy URL for the asyncpg dialect plus the connect() keywords it cannot carry."""

    url: str
    connect_args: dict[str, Any] = field(default_factory=dict)
    server_settings: dict[str, str] = field(default_factory=dict)
    host: str = ""


def translate_url(raw: str) -> AsyncpgUrl:
    """Accept postgres://, postgresql:// and postgresql+asyncpg:// URLs with libpq query parameters.

    asyncpg raises TypeError on libpq-only parameters such as `sslmode` or `channel_binding`
    when SQLAlchemy forwards them as keywords, so each is translated or dropped with a note.
    """
    parts = urlsplit(raw.strip())
    scheme = parts.scheme.lower()
    if scheme not in {"postgres", "postgresql", "postgresql+asyncpg"}:
        raise ValueError(
            "DATABASE_URL must start with postgresql:// or postgres:// "
            f"(got {scheme or 'no'} scheme)"
        )
    kept: list[tuple[str, str]] = []
    connect_args: dict[str, Any] = {}
    server_settings: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "sslmode":
            if value not in _SSL_MODES:
                raise ValueError(f"DATABASE_URL has an unknown sslmode {value!r}")
            connect_args["ssl"] = value
        elif key in _PASSED_THROUGH:
            kept.append((key, value))
        elif key == "connect_timeout":
            connect_args[_RENAMED[key] or key] = float(value)
        elif key == "application_name":
            server_settings["application_name"] = value
        elif key == "options":
            server_settings.update(_parse_options(value))
        else:
            log.info("DATABASE_URL parameter %r is not supported by asyncpg; ignoring it", key)
    host = parts.hostname or dict(kept).get("host", "")
    url = urlunsplit(("postgresql+asyncpg", parts.netloc, parts.path, urlencode(kept), ""))
    return AsyncpgUrl(url, connect_args, server_settings, host)


def _parse_options(value: str) -> dict[str, str]:
    """libpq's `options=-c key=value -c ...` becomes asyncpg server_settings."""
    settings: dict[str, str] = {}
    for token in value.replace("-c ", "-c").split():
        if token.startswith("-c") and "=" in token:
            key, _, setting = token[2:].partition("=")
            settings[key] = setting
    return settings


def is_pooler_host(host: str) -> bool:
    """Neon's transaction-pooling PgBouncer endpoints carry `-pooler` in the host name."""
    return "-pooler" in host.split(".", 1)[0]
