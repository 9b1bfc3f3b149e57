"""Reading REST requests: bodies and task ids refused in FastAPI's shapes (422, 415), JSON taken."""

from __future__ import annotations

import httpx
import pytest

from tests.support.doors import Caller

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _assert_fastapi_422(response: httpx.Response, loc: list[str], kind: str) -> None:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    assert detail
    for item in detail:
        assert set(item) == {"loc", "msg", "type"}
        assert isinstance(item["msg"], str)
        assert item["msg"]
    assert [(item["loc"], item["type"]) for item in detail] == [(loc, kind)]


MALFORMED_BODIES = [
    pytest.param(b'{"title": ', ["body"], "json_invalid", id="truncated-json"),
    pytest.param(b"", ["body"], "json_invalid", id="empty-body"),
    pytest.param(b'{"title": "x",}', ["body"], "json_invalid", id="trailing-comma"),
    pytest.param(b'{"title":"\\ud800"}', ["body"], "json_invalid", id="lone-surrogate"),
    pytest.param(b'{"title": "\xff"}', ["body"], "json_invalid", id="invalid-utf8"),
    pytest.param(b'[{"title": "x"}]', ["body"], "dict_type", id="array"),
    pytest.param(b'"title"', ["body"], "dict_type", id="string"),
    pytest.param(b"null", ["body"], "dict_type", id="null"),
    pytest.param(b'{"title": 5}', ["body", "title"], "string_type", id="number-title"),
    pytest.param(b'{"title": ["x"]}', ["body", "title"], "string_type", id="array-title"),
    pytest.param(
        b'{"title": "x", "completed": "yes"}', ["body", "completed"], "bool_type", id="str-bool"
    ),
    pytest.param(
        b'{"title": "x", "completed": 1}', ["body", "completed"], "bool_type", id="int-bool"
    ),
    pytest.param(
        b'{"title": "x", "description": {"a": 1}}',
        ["body", "description"],
        "string_type",
        id="object-description",
    ),
    pytest.param(
        b'{"title": "x", "due_date": 1767225600}',
        ["body", "due_date"],
        "datetime_type",
        id="number-due-date",
    ),
    pytest.param(
        b'{"title": "x", "due_date": "2026-13-01"}',
        ["body", "due_date"],
        "datetime_parsing",
        id="bad-month",
    ),
]


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize(("raw", "loc", "kind"), MALFORMED_BODIES)
async def test_rest_malformed_bodies_are_422_in_fastapis_shape(
    http: httpx.AsyncClient,
    alice: Caller,
    method: str,
    raw: bytes,
    loc: list[str],
    kind: str,
) -> None:
    base = f"/api/{alice.user_id}/tasks"
    task = (await http.post(base, json={"title": "t"}, headers=alice.headers)).json()
    path = base if method == "POST" else f"{base}/{task['id']}"

    response = await http.request(
        method, path, content=raw, headers={**alice.headers, "Content-Type": "application/json"}
    )

    _assert_fastapi_422(response, loc, kind)
    assert (await http.get(base, headers=alice.headers)).json() == [task]


@pytest.mark.parametrize("task_id", ["abc", "1.5", "-1", "1e3", "%20", "\u0661"])
@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
async def test_rest_a_non_integer_task_id_is_422(
    http: httpx.AsyncClient, alice: Caller, method: str, task_id: str
) -> None:
    path = f"/api/{alice.user_id}/tasks/{task_id}" + ("/complete" if method == "PATCH" else "")
    body = {"json": {"title": "x"}} if method == "PUT" else {}

    response = await http.request(method, path, headers=alice.headers, **body)

    _assert_fastapi_422(response, ["path", "task_id"], "int_parsing")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_rest_a_body_that_is_not_json_is_415(
    http: httpx.AsyncClient, alice: Caller, method: str, content_type: str
) -> None:
    base = f"/api/{alice.user_id}/tasks"
    task = (await http.post(base, json={"title": "t"}, headers=alice.headers)).json()
    path = base if method == "POST" else f"{base}/{task['id']}"

    response = await http.request(
        method,
        path,
        content=b'{"title": "x"}',
        headers={**alice.headers, "Content-Type": content_type},
    )

    assert response.status_code == 415
    assert isinstance(response.json()["detail"], str)
    assert (await http.get(base, headers=alice.headers)).json() == [task]


async def test_rest_json_bodies_are_accepted_without_a_content_type_or_with_a_charset(
    http: httpx.AsyncClient, alice: Caller
) -> None:
    base = f"/api/{alice.user_id}/tasks"

    bare = await http.post(base, content=b'{"title": "bare"}', headers=alice.headers)
    charset = await http.post(
        base,
        content='{"title": "caf\u00e9"}'.encode(),
        headers={**alice.headers, "Content-Type": "application/json; charset=utf-8"},
    )

    assert (bare.status_code, charset.status_code) == (201, 201)
    assert charset.json()["title"] == "caf\u00e9"


async def test_rest_fields_a_client_may_not_set_are_ignored(
    http: httpx.AsyncClient, alice: Caller, bob: Caller
) -> None:
    body = {"title": "x", "id": 424242, "owner_id": bob.user_id, "version": 99, "extra": 1}

    response = await http.post(f"/api/{alice.user_id}/tasks", json=body, headers=alice.headers)

    assert response.status_code == 201
    assert response.json()["id"] != 424242
    assert response.headers["etag"] == '"1"'
    assert (await http.get(f"/api/{bob.user_id}/tasks", headers=bob.headers)).json() == []
