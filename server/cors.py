"""Cross-origin access for the frontend's origins; tokens travel in a header, not cookies."""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware


def cors(origins: tuple[str, ...]) -> list[Middleware]:
    """The CORS middleware for `origins`; none at all (no cross-origin access) without any."""
    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "If-Match",
                "X-Request-ID",
            ],
            expose_headers=[
                "ETag",
                "Idempotent-Replayed",
                "Location",
                "Retry-After",
                "WWW-Authenticate",
                "X-Total-Count",
            ],
            max_age=600,
        )
    ]
