"""The live-update metrics: subscribers open, events delivered and their lag, streams ended."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.app import make_settings
from tests.support.live import live_server
from tests.support.streams import bearer, create_tasks, new_user, rest_event, rest_events


@pytest.fixture(scope="module")
def base_url(database_url: str) -> Iterator[str]:
    with live_server(make_settings(database_url, DB_POOL_SIZE="3")) as url:
        yield url


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        yield client


async def _samples(http: httpx.AsyncClient) -> dict[str, float]:
    text = (await http.get("/metrics")).text
    return {
        sample.name + str(sorted(sample.labels.items()) or ""): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("taskql_live_")
    }


async def _samples_once_settled(
    http: httpx.AsyncClient, name: str, expected: float
) -> dict[str, float]:
    """The samples once `name` reads `expected`, or after 5 s whatever they are.

    The server counts a stream as gone in its handler's clean-up, which can run just after
    the client has read the stream's last event and closed it.
    """
    deadline = time.monotonic() + 5
    while (samples := await _samples(http)).get(name, 0) != expected:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    return samples


@pytest.mark.slow
async def test_subscribers_deliveries_lag_and_endings_are_counted(
    http: httpx.AsyncClient,
) -> None:
    user = new_user()
    before = await _samples(http)
    expires_at = int(time.time()) + 2
    async with rest_events(http, user, headers=bearer(user, exp=expires_at)) as events:
        during = await _samples(http)
        await create_tasks(http, user, 2)
        for _ in range(2):
            rest_event(await anext(events))
        assert (await anext(events)).event == "error"  # the token expired
    subscribers = "taskql_live_subscribers"
    after = await _samples_once_settled(http, subscribers, before.get(subscribers, 0))

    assert during[subscribers] == before.get(subscribers, 0) + 1
    assert after[subscribers] == before.get(subscribers, 0)
    delivered = "taskql_live_events_delivered_total"
    assert after[delivered] == before.get(delivered, 0) + 2
    lag_count = "taskql_live_delivery_lag_seconds_count"
    assert after[lag_count] == before.get(lag_count, 0) + 2
    ended = "taskql_live_streams_ended_total[('reason', 'TOKEN_EXPIRED')]"
    assert after[ended] == before.get(ended, 0) + 1
