"""The floor: a minimal hand-written Starlette + asyncpg + PyJWT + orjson app doing the same work.

It verifies the same HS256 token, checks the same path owner, runs the same SQL as the
API's list, create and toggle, and serialises the same fields; nothing else. The benchmark
reports the API's throughput as a ratio of this app's, measured in the same run.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import jwt
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_COLUMNS = "id, title, description, due_date, completed, created_at, updated_at"
_LIST = f"SELECT {_COLUMNS} FROM tasks WHERE owner_id = $1 ORDER BY created_at, id"
_INSERT = (
    "INSERT INTO tasks (owner_id, title, description, due_date, completed) "
    f"VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}"
)
_TOGGLE = (
    "UPDATE tasks SET completed = NOT completed, version = version + 1, updated_at = now() "
    f"WHERE owner_id = $1 AND id = $2 RETURNING {_COLUMNS}"
)
_SECRET = os.environ["JWT_SECRET"]


def _owner(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    try:
        claims = jwt.decode(header[7:], _SECRET, algorithms=["HS256"])
    except jwt.PyJWTError:
        return None
    sub = claims.get("sub")
    return sub if sub == request.path_params["user_id"] else None


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


async def list_tasks(request: Request) -> Response:
    owner = _owner(request)
    if owner is None:
        return _json({"detail": "forbidden"}, 403)
    rows = await request.state.pool.fetch(_LIST, owner)
    return _json([dict(row) for row in rows])


async def create_task(request: Request) -> Response:
    owner = _owner(request)
    if owner is None:
        return _json({"detail": "forbidden"}, 403)
    body = orjson.loads(await request.body())
    row = await request.state.pool.fetchrow(
        _INSERT, owner, body["title"], body.get("description", ""), None, False
    )
    return _json(dict(row), 201)


async def toggle_task(request: Request) -> Response:
    owner = _owner(request)
    if owner is None:
        return _json({"detail": "forbidden"}, 403)
    row = await request.state.pool.fetchrow(_TOGGLE, owner, int(request.path_params["task_id"]))
    return _json(dict(row)) if row else _json({"detail": "not found"}, 404)


async def healthz(request: Request) -> Response:
    return _json({"status": "ok"})


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Like the API's pool: no session state to reset, so no RESET ALL round trip."""


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    pool = await asyncpg.create_pool(
        os.environ["DATABASE_URL"], min_size=2, max_size=20, reset=_no_reset
    )
    try:
        yield {"pool": pool}
    finally:
        await pool.close()


app = Starlette(
    routes=[
        Route("/healthz", healthz, methods=["GET"]),
        Route("/api/{user_id}/tasks", list_tasks, methods=["GET"]),
        Route("/api/{user_id}/tasks", create_task, methods=["POST"]),
        Route("/api/{user_id}/tasks/{task_id}/complete", toggle_task, methods=["PATCH"]),
    ],
    lifespan=lifespan,
)
