"""An unexpected failure is masked by both doors and logged once each, with the request id."""

from __future__ import annotations

import logging

import pytest

from tests.support.app import app_client, make_settings
from tests.support.databases import failing_database
from tests.support.doors import new_caller
from tests.support.graphql import post_graphql

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.mark.slow
async def test_unexpected_errors_are_masked_and_logged(
    admin_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    alice = new_caller("alice")
    headers = {**alice.headers, "X-Request-Id": "req-masked-1"}
    caplog.set_level(logging.ERROR)
    async with (
        failing_database(admin_database_url, alice.user_id) as url,
        app_client(make_settings(url)) as client,
    ):
        # Starlette re-raises after sending its 500 so that the server can log it too; the
        # client of a real server sees only the response, so this one should as well.
        client._transport.raise_app_exceptions = False
        graphql_response = await post_graphql(client, "{ tasks { totalCount } }", headers=headers)
        rest_response = await client.get(f"/api/{alice.user_id}/tasks", headers=headers)

    assert graphql_response.status_code == 200
    body = graphql_response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["message"] == "Internal server error"
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-masked-1"}
    assert error["path"] == ["tasks"]
    assert rest_response.status_code == 500
    assert rest_response.json() == {"detail": "Internal server error"}
    for leaky in ("nobody planned", "taskql_test_failure", "Raise", "asyncpg", "SELECT"):
        assert leaky not in graphql_response.text
        assert leaky not in rest_response.text
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 2
    assert all("req-masked-1" in record.getMessage() for record in logged)
    assert all(record.exc_info for record in logged)
