"""Liveness and readiness: /healthz (the process answers) and /readyz (it can serve)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from resolvers.health import unready_reason

# Seconds a load balancer might wait before asking again.
RETRY_AFTER_SECONDS = 2


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """200 when requests can be served, so a load balancer sends traffic only to working
    workers; otherwise 503 with the reason."""
    reason = await unready_reason(request.state.database)
    if reason is not None:
        return JSONResponse(
            {"status": "unavailable", "reason": reason},
            503,
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return JSONResponse({"status": "ok"})


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
