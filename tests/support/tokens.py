"""Real HS256 tokens signed with the test suite's shared secret, and the headers that carry them."""

from __future__ import annotations

import time
from typing import Any

import jwt

JWT_SECRET = "test-secret-that-is-long-enough-for-hs256"


def hs256_token(user_id: object, *, secret: str = JWT_SECRET, **claims: Any) -> str:
    """A real HS256 token; `claims` override or add to sub/exp (pass exp=None to drop it)."""
    now = int(time.time())
    payload: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + 600}
    payload.update(claims)
    payload = {key: value for key, value in payload.items() if value is not None}
    return jwt.encode(payload, secret, algorithm="HS256")


def bearer(token: str) -> dict[str, str]:
    """The Authorization header that carries `token`."""
    return {"Authorization": f"Bearer {token}"}
