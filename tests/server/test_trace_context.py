"""W3C trace context: a valid `traceparent`'s trace id is in the request's access log line, so
one user action can be followed from the browser into the logs; anything else is left out."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from server.logs import JsonFormatter, formatter

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "taskql.access"]


async def test_the_trace_id_is_in_the_access_line_of_both_doors(
    client: httpx.AsyncClient,
    auth: Callable[[str], dict[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="taskql.access")
    headers = {**auth("alice"), "traceparent": TRACEPARENT, "tracestate": "vendor=1"}

    await client.get("/api/alice/tasks", headers=headers)
    await client.post("/graphql", json={"query": "query Mine { viewer { id } }"}, headers=headers)

    for record in access_records(caplog):
        line: dict[str, Any] = json.loads(JsonFormatter().format(record))
        assert line["trace_id"] == TRACE_ID
        assert f"trace_id={TRACE_ID}" in formatter("text").format(record)
    assert len(access_records(caplog)) == 2


@pytest.mark.parametrize(
    "traceparent",
    [
        "not a traceparent",
        f"00-{'0' * 32}-00f067aa0ba902b7-01",
        f"00-{TRACE_ID}-{'0' * 16}-01",
        f"ff-{TRACE_ID}-00f067aa0ba902b7-01",
        f"00-{TRACE_ID.upper()}-00f067aa0ba902b7-01",
        f"00-{TRACE_ID}-00f067aa0ba902b7-01-extra",
        f"00-{TRACE_ID}-00f067aa0ba902b7",
    ],
)
async def test_an_invalid_traceparent_is_ignored(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, traceparent: str
) -> None:
    caplog.set_level(logging.INFO, logger="taskql.access")

    response = await client.get("/healthz", headers={"traceparent": traceparent})

    assert response.status_code == 200
    [record] = access_records(caplog)
    assert json.loads(JsonFormatter().format(record))["trace_id"] is None
    assert "trace_id=-" in formatter("text").format(record)


async def test_a_later_version_may_carry_more_fields(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskql.access")

    await client.get("/healthz", headers={"traceparent": f"01-{TRACE_ID}-00f067aa0ba902b7-01-x"})

    [record] = access_records(caplog)
    assert json.loads(JsonFormatter().format(record))["trace_id"] == TRACE_ID
