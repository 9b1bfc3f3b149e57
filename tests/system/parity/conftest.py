"""The parity suite's door: every scenario runs once through REST and once through GraphQL.

Everything goes through the real ASGI app over HTTP with real tokens and a real PostgreSQL.
Each module shares one app (the `http` fixture); its tests keep apart by acting as users of
their own (fresh random ids), so no test can see another's tasks.
"""

from __future__ import annotations

import httpx
import pytest

from tests.support.doors import Door, GraphQLDoor, RestDoor


@pytest.fixture(params=["rest", "graphql"])
def door(request: pytest.FixtureRequest, http: httpx.AsyncClient) -> Door:
    return RestDoor(http) if request.param == "rest" else GraphQLDoor(http)
