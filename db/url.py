"""Turn a libpq-style DATABASE_URL (as Neon prints it) into what SQLAlchemy + asyncpg accept."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

log = logging.getLogger(__name__)

# asyncpg takes these libpq parameters as connect() keywords under other names.
_RENAMED = {"connect_timeout": "timeout", "application_name": None}
# asyncpg accepts these keywords as they are.
_PASSED_THROUGH = {"host", "port", "user", "password", "target_session_attrs"}
_SSL_MODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}
# One entry of a multi-host list: a name, an IPv4 or a [bracketed] IPv6 address, and a port.
_HOST_SPEC = re.compile(r"(?P<host>\[[^\]]*\]|[^:\[\]]+)(?::(?P<port>\d+))?")
_DEFAULT_PORT = "5432"


@dataclass(frozen=True, slots=True)
class AsyncpgUrl:
    """A SQLAlchemy URL for the asyncpg dialect plus the connect() keywords it cannot carry."""

    url: str
    connect_args: dict[str, Any] = field(default_factory=dict)
    server_settings: dict[str, str] = field(default_factory=dict)
    host: str = ""
    # A multi-host URL's (address, port) pairs, to be tried one after the other; empty for a
    # single host, and for prefer-standby, which asyncpg can only decide having reached all.
    hosts: tuple[tuple[str, int], ...] = ()


def translate_url(raw: str) -> AsyncpgUrl:
    """Accept postgres://, postgresql:// and postgresql+asyncpg:// URLs with libpq query parameters.

    asyncpg raises TypeError on libpq-only parameters such as `sslmode` or `channel_binding`
    when SQLAlchemy forwards them as keywords, so each is translated or dropped with a note.
    A libpq multi-host list (`h1:p1,h2:p2`, for failover with `target_session_attrs`) moves
    into `host=h1,h2&port=p1,p2`, the one spelling both SQLAlchemy and asyncpg parse.
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
    netloc = parts.netloc
    userinfo, at, host_list = netloc.rpartition("@")
    hosts: tuple[tuple[str, int], ...] = ()
    if "," in host_list:
        names, ports = _split_host_list(host_list)
        kept = [("host", ",".join(names)), ("port", ",".join(ports)), *kept]
        netloc = userinfo + at
        host = names[0]
        if dict(kept).get("target_session_attrs") != "prefer-standby":
            hosts = tuple(
                (name.strip("[]"), int(port)) for name, port in zip(names, ports, strict=True)
            )
    else:
        host = parts.hostname or dict(kept).get("host", "")
    # Not urlunsplit: it drops the `//` of an empty authority, which SQLAlchemy then rejects.
    url = f"postgresql+asyncpg://{netloc}{parts.path}"
    if kept:
        url += f"?{urlencode(kept)}"
    return AsyncpgUrl(url, connect_args, server_settings, host, hosts)


def _split_host_list(hosts: str) -> tuple[list[str], list[str]]:
    """`h1:p1,h2,...` as hosts and ports; a host without one gets libpq's default, 5432."""
    names: list[str] = []
    ports: list[str] = []
    for spec in hosts.split(","):
        match = _HOST_SPEC.fullmatch(spec)
        if match is None:
            raise ValueError(f"DATABASE_URL has an invalid host {spec!r} in its host list")
        names.append(match["host"])
        ports.append(match["port"] or _DEFAULT_PORT)
    return names, ports


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
