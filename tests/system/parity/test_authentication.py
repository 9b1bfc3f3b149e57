"""Requests without a valid token are unauthenticated through either door, and change nothing."""

from __future__ import annotations

import time

import pytest

from tests.support.doors import OPERATIONS, Caller, Door, create, current, operate
from tests.support.tokens import bearer, hs256_token

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _credentials(kind: str, user_id: str) -> dict[str, str]:
    now = int(time.time())
    if kind == "none":
        return {}
    if kind == "garbage":
        return bearer("garbage")
    if kind == "expired":
        return bearer(hs256_token(user_id, iat=now - 7200, exp=now - 3600))
    if kind == "other-secret":
        return bearer(hs256_token(user_id, secret="another-secret-that-is-long-enough-too"))
    if kind == "no-exp":
        return bearer(hs256_token(user_id, exp=None))
    return {"Authorization": f"Basic {user_id}"}


CREDENTIALS = ["none", "garbage", "expired", "other-secret", "no-exp", "basic-scheme"]


@pytest.mark.parametrize("credentials", CREDENTIALS)
@pytest.mark.parametrize("operation", ["create", "list", *OPERATIONS])
async def test_requests_without_a_valid_token_are_unauthenticated(
    door: Door, alice: Caller, credentials: str, operation: str
) -> None:
    task = await create(door, alice)
    intruder = Caller(alice.user_id, _credentials(credentials, alice.user_id))

    if operation == "create":
        outcome = await door.create(intruder, {"title": "planted"})
    elif operation == "list":
        outcome = await door.list(intruder)
    else:
        outcome = await operate(door, intruder, operation, task.id)

    assert outcome.kind == "unauthenticated"
    assert outcome.status == 401
    assert [t.id for t in (await door.list(alice)).tasks] == [task.id]
    assert await current(door, alice, task.id) == task
