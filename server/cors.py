"""Cross-origin access for the frontend's origins; tokens travel in a header, not cookies."""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from server.settings import ConfigError

# What a browser may send besides the CORS-safelisted headers: ours, and those that the
# clients frontends use add by themselves. A header missing here fails every preflight of
# the page that sends it, so every request it makes.
DEFAULT_ALLOW_HEADERS = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-Match",
    "X-Request-ID",
    # W3C Trace Context (OpenTelemetry's fetch instrumentation) and W3C Baggage.
    "traceparent",
    "tracestate",
    "baggage",
    # Sentry's browser SDK.
    "sentry-trace",
    # Apollo Client's client awareness.
    "apollographql-client-name",
    "apollographql-client-version",
)
# What a page may read of a response besides the safelisted headers.
EXPOSE_HEADERS = (
    "ETag",
    "Idempotent-Replayed",
    "Location",
    "Retry-After",
    "WWW-Authenticate",
    "X-Request-ID",
    "X-Total-Count",
)
# RFC 9110's token: what a header name may be made of.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def allowed_headers(extra: Iterable[str], setting: str = "CORS_ALLOW_HEADERS") -> tuple[str, ...]:
    """The default request headers and `extra`; raises ConfigError naming a bad one.

    `*` is refused: it would let a page send any header at all, where naming them keeps the
    list to what the frontend's clients actually send.
    """
    names = list(DEFAULT_ALLOW_HEADERS)
    known = {name.lower() for name in names}
    for name in extra:
        if _HEADER_NAME.fullmatch(name) is None or name == "*":
            raise ConfigError(
                f"{setting} must list header names separated by commas (no `*`), got {name!r}"
            )
        if name.lower() not in known:
            known.add(name.lower())
            names.append(name)
    return tuple(names)


def cors(
    origins: tuple[str, ...], headers: tuple[str, ...] = DEFAULT_ALLOW_HEADERS
) -> list[Middleware]:
    """The CORS middleware for `origins`; none at all (no cross-origin access) without any."""
    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=list(headers),
            expose_headers=list(EXPOSE_HEADERS),
            max_age=600,
        )
    ]
