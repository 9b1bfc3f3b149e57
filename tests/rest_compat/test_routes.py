"""The REST routes: status codes, Location and ETag, If-Match, the path's owner, methods."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import httpx
import pytest

from tests.support.app import app_client, make_settings
from tests.support.doors import Caller, new_caller
from tests.support.graphql import post_graphql
from tests.support.tokens import bearer, hs256_token

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_rest_create_answers_201_with_location_and_etag(
    http: httpx.AsyncClient, alice: Caller
) -> None:
    response = await http.post(
        f"/api/{alice.user_id}/tasks", json={"title": "Buy milk"}, headers=alice.headers
    )

    assert response.status_code == 201
    task = response.json()
    assert response.headers["location"] == f"/api/{alice.user_id}/tasks/{task['id']}"
    assert response.headers["etag"] == '"1"'
    follow = await http.get(response.headers["location"], headers=alice.headers)
    assert follow.status_code == 200
    assert follow.json() == task


async def test_rest_etag_follows_the_version(http: httpx.AsyncClient, alice: Caller) -> None:
    base = f"/api/{alice.user_id}/tasks"
    created = await http.post(base, json={"title": "t"}, headers=alice.headers)
    path = f"{base}/{created.json()['id']}"

    toggled = await http.patch(f"{path}/complete", headers=alice.headers)
    updated = await http.put(path, json={"title": "u"}, headers=alice.headers)
    fetched = await http.get(path, headers=alice.headers)

    assert [r.headers["etag"] for r in (created, toggled, updated, fetched)] == [
        '"1"',
        '"2"',
        '"3"',
        '"3"',
    ]


async def test_rest_if_match(http: httpx.AsyncClient, alice: Caller) -> None:
    base = f"/api/{alice.user_id}/tasks"
    task_id = (await http.post(base, json={"title": "t"}, headers=alice.headers)).json()["id"]
    path = f"{base}/{task_id}"
    await http.patch(f"{path}/complete", headers=alice.headers)

    stale = await http.put(path, json={"title": "x"}, headers={**alice.headers, "If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.json()["current_version"] == 2
    assert isinstance(stale.json()["detail"], str)
    assert stale.headers["etag"] == '"2"'

    matching = await http.put(
        path, json={"title": "x"}, headers={**alice.headers, "If-Match": '"2"'}
    )
    assert matching.status_code == 200
    assert matching.headers["etag"] == '"3"'

    weak = await http.patch(f"{path}/complete", headers={**alice.headers, "If-Match": 'W/"3"'})
    assert weak.status_code == 200
    anything = await http.patch(f"{path}/complete", headers={**alice.headers, "If-Match": "*"})
    assert anything.status_code == 200

    stale_delete = await http.delete(path, headers={**alice.headers, "If-Match": '"1"'})
    assert stale_delete.status_code == 412
    assert (await http.get(path, headers=alice.headers)).status_code == 200

    empty_update = await http.put(path, json={}, headers={**alice.headers, "If-Match": '"1"'})
    assert empty_update.status_code == 412
    assert empty_update.json()["current_version"] == 5

    # Well-formed tags that no version can have (the column is a 32-bit integer).
    for tag in ['"2147483648"', '"99999999999999999999"']:
        for method, target in [("PUT", path), ("PATCH", f"{path}/complete"), ("DELETE", path)]:
            body = {"json": {"title": "x"}} if method == "PUT" else {}
            answer = await http.request(
                method, target, headers={**alice.headers, "If-Match": tag}, **body
            )
            assert answer.status_code == 412, (tag, method, answer.text)
            assert answer.json()["current_version"] == 5
        missing = await http.delete(
            f"{base}/{task_id + 1000}", headers={**alice.headers, "If-Match": tag}
        )
        assert missing.status_code == 404

    bad = await http.delete(path, headers={**alice.headers, "If-Match": "yesterday"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["header", "If-Match"]
    # What the OpenAPI document allows: quoted, weak or (for legacy clients) bare versions.
    half_quoted = await http.delete(path, headers={**alice.headers, "If-Match": '"5'})
    assert half_quoted.status_code == 422
    bare = await http.patch(f"{path}/complete", headers={**alice.headers, "If-Match": "5"})
    assert bare.status_code == 200


def _every_route(owner: str, task_id: str) -> list[tuple[str, str]]:
    return [
        ("GET", f"/api/{owner}/tasks"),
        ("POST", f"/api/{owner}/tasks"),
        ("GET", f"/api/{owner}/tasks/{task_id}"),
        ("PUT", f"/api/{owner}/tasks/{task_id}"),
        ("PATCH", f"/api/{owner}/tasks/{task_id}/complete"),
        ("DELETE", f"/api/{owner}/tasks/{task_id}"),
    ]


BODIES = {
    "valid": {"json": {"title": "planted"}},
    "invalid": {"json": {"title": ""}},
    "malformed": {"content": b"{", "headers": {"Content-Type": "application/json"}},
    "wrong-type": {"content": b"title=x", "headers": {"Content-Type": "text/plain"}},
}


@pytest.mark.parametrize("body", list(BODIES))
@pytest.mark.parametrize("task_id", ["existing", "1000000000", "abc", "99999999999999999999"])
async def test_rest_another_users_path_is_forbidden_on_every_route(
    http: httpx.AsyncClient, alice: Caller, bob: Caller, task_id: str, body: str
) -> None:
    task = (
        await http.post(f"/api/{alice.user_id}/tasks", json={"title": "t"}, headers=alice.headers)
    ).json()
    if task_id == "existing":
        task_id = str(task["id"])

    for method, path in _every_route(alice.user_id, task_id):
        options = BODIES[body] if method in ("POST", "PUT") else {}
        request_headers = {**bob.headers, **options.get("headers", {})}
        response = await http.request(
            method,
            path,
            json=options.get("json"),
            content=options.get("content"),
            headers=request_headers,
        )
        assert response.status_code == 403, (method, path, response.text)
        assert response.json() == {"detail": "You can only access your own tasks"}

    owner_view = await http.get(f"/api/{alice.user_id}/tasks", headers=alice.headers)
    assert owner_view.json() == [task]


async def test_rest_forbidden_is_decided_before_any_query() -> None:
    # A database nobody listens on: any query would fail with 503, so a 403 proves none ran.
    unreachable = "postgresql://postgres@127.0.0.1:1/nowhere"
    alice, bob = new_caller("alice"), new_caller("bob")
    async with app_client(make_settings(unreachable, DB_CONNECT_TIMEOUT="2")) as client:
        for method, path in _every_route(alice.user_id, "1"):
            body = {"json": {"title": "x"}} if method in ("POST", "PUT") else {}
            forbidden = await client.request(method, path, headers=bob.headers, **body)
            assert forbidden.status_code == 403, (method, path, forbidden.text)
            own = await client.request(method, path, headers=alice.headers, **body)
            assert own.status_code == 503, (method, path, own.text)
            assert int(own.headers["retry-after"]) > 0
        graphql = await client.post(
            "/graphql", json={"query": "{ tasks { totalCount } }"}, headers=alice.headers
        )
        assert graphql.status_code == 503
        assert graphql.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
async def test_rest_a_huge_task_id_is_404_not_500(
    http: httpx.AsyncClient, alice: Caller, method: str
) -> None:
    path = f"/api/{alice.user_id}/tasks/99999999999999999999"
    path += "/complete" if method == "PATCH" else ""
    body = {"json": {"title": "x"}} if method == "PUT" else {}

    response = await http.request(method, path, headers=alice.headers, **body)

    assert response.status_code == 404
    assert response.json() == {"detail": "Task 99999999999999999999 not found"}


@pytest.mark.parametrize(
    "prefix", ["auth0|", "ada@example.com:", "Zo\u00eb \u03a9 \u674e ", "a?b#c", "50%", "a+b"]
)
async def test_rest_any_subject_can_use_its_own_path(http: httpx.AsyncClient, prefix: str) -> None:
    # Subjects are opaque strings: Auth0's carry "|", others e-mail addresses or any text.
    user_id = f"{prefix}{uuid.uuid4().hex}"
    headers = bearer(hs256_token(user_id))
    base = f"/api/{quote(user_id, safe='')}/tasks"

    created = await http.post(base, json={"title": "x"}, headers=headers)

    assert created.status_code == 201, created.text
    follow = await http.get(created.headers["location"], headers=headers)
    assert follow.status_code == 200
    assert follow.json() == created.json()
    assert (await http.get(base, headers=headers)).json() == [created.json()]
    viewer = await post_graphql(http, "{ viewer { id } }", headers=headers)
    assert viewer.json() == {"data": {"viewer": {"id": user_id}}}


async def test_rest_methods_and_unknown_routes(http: httpx.AsyncClient, alice: Caller) -> None:
    wrong_method = await http.post(f"/api/{alice.user_id}/tasks/1", headers=alice.headers)
    unknown = await http.get("/api/nothing-here", headers=alice.headers)
    head = await http.head(f"/api/{alice.user_id}/tasks", headers=alice.headers)
    other_head = await http.head(f"/api/{alice.user_id}x/tasks", headers=alice.headers)

    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-type"] == "application/json"
    assert other_head.status_code == 403

    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"detail": "Method Not Allowed"}
    assert set(wrong_method.headers["allow"].replace(" ", "").split(",")) == {
        "GET",
        "HEAD",
        "PUT",
        "DELETE",
    }
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "Not Found"}
